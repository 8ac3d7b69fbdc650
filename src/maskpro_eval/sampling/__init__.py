"""How samples are drawn: the protocol (SamplingConfig), the per-sample noise rule, the standard and fast samplers, the resumable store, images."""
