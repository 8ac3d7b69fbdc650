"""How good the samples are: the FID Inception network, Frechet/KID math, reference sets and their cache, the full-tier QualityEvaluator."""
