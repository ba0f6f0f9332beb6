"""ftexp's Hydra launchers. Hydra imports every module under the ``hydra_plugins`` namespace package when it looks for
plugins, so the modules here import nothing heavier than Hydra at the top."""
