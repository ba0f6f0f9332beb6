"""ftexp's Hydra launchers, laid out as Hydra's own launcher plugins (hydra_submitit_launcher, hydra_joblib_launcher).

Hydra imports every module under the ``hydra_plugins`` namespace package on every start, except those whose name
starts with one underscore, so the modules it imports hold nothing heavier than Hydra:

- ``config.py``: the launcher's config dataclass, registered in Hydra's ConfigStore as ``hydra/launcher=local_gpus``;
- ``local_gpus.py``: the ``Launcher`` class Hydra instantiates from it, and the check of its GPU ids;
- ``_core.py``: what ``launch`` runs (job files, processes, the GPU pool), imported by ``launch`` only;
- ``_job.py``: one job, in a process of its own.
"""
