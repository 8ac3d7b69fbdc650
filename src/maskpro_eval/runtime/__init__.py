"""Where and how fast it runs: dtypes, CUDA-synchronised timing, latency and forward benchmarks, 2:4 sparse kernels, torchrun sharding."""
