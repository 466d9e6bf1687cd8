"""The published sweeper's ``custom-search-space-objective.py`` example: ``z`` is searched
around the sampled ``x`` and ``+w`` (a key the config lacks) is added by ``configure``."""

import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path="custom-search-space", config_name="config")
def multi_dimensional_sphere(cfg: DictConfig) -> float:
    return sum(float(cfg[k]) ** 2 for k in ("w", "x", "y", "z"))


def configure(cfg: DictConfig, trial: object) -> None:
    """Suggest ``z`` within ``max_z_difference_from_x`` of ``x``, and the new key ``+w``."""
    x = trial.params["x"]
    trial.suggest_float("z", x - cfg.max_z_difference_from_x, x + cfg.max_z_difference_from_x)
    trial.suggest_float("+w", 0.0, 1.0)  # "+w": w is not in the config


if __name__ == "__main__":
    multi_dimensional_sphere()
