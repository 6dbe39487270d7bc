"""RAW-domain object detection: the last experiment of the RAW-Diffusion paper."""
