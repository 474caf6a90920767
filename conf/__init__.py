"""rlsuite's Hydra configuration, shipped as a package so the CLI finds it from anywhere."""
