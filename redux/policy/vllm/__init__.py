"""The vLLM engine: the policy's autoregressive reasoning served by vLLM, the rest in torch."""
