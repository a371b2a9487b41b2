"""Gradient-based inverse calibration of DEM material parameters (issue #5).

Fit per-type material values (Young's modulus, restitution, friction, cohesion energy density,
Poisson's ratio) so that simulated curves match target curves, with JAX gradients through the
simulator, optax optimisers, multi-start and an identifiability analysis.

Command line::

    python -m calibrate fit CONFIG.toml --out DIR [--resume] [--quiet]
    python -m calibrate fit calibrate/examples/hertz_twin.toml --out runs/hertz_twin

writes ``fit.json``, ``parameters.csv``, ``history.csv``/``.json``, ``fit.png`` and a checkpoint
into DIR (:mod:`calibrate.run`); the config keys are in :mod:`calibrate.config`.

From Python::

    from calibrate.config import load_config
    from calibrate.fit import fit
    from calibrate.identifiability import identifiability
    from calibrate.run import objective_from_config

    config = load_config("calibrate/examples/hertz_twin.toml")
    objective = objective_from_config(config)
    result = fit(objective, config.optimizer)           # result.values: {"AM.E_GPa": 200.0, ...}
    analysis = identifiability(objective, result.theta)  # analysis.unconstrained_names

Pieces:

* :mod:`calibrate.parameters`: names ``"AM.E_GPa"``, bounds, log/logit transforms,
  ``materials_from_parameters(base, values, mixing)``;
* :mod:`calibrate.targets`: target curves from CSV;
* :mod:`calibrate.simulators`: ``simulate(materials) -> {curve: (x, y)}``, the registry
  ``register(kind)``, the built-in ``"hertz_sphere_on_plate"``;
* :mod:`calibrate.loss`: normalised weighted residuals and the loss;
* :mod:`calibrate.fit`: Adam / L-BFGS loop, progress, history, checkpoint and resume;
* :mod:`calibrate.multistart`: starts in the bounds, vmapped and sharded over devices;
* :mod:`calibrate.identifiability`: Fisher matrix, unconstrained directions, intervals.
"""

import twin  # noqa: F401  (float64 on, as everywhere in the twin)
