"""hydra/launcher=local_gpus passes Hydra's own launcher conformance suites (hydra.test_utils.launcher_common_tests),
as Hydra's launcher plugins do: the same job dirs, .hydra files, job names, overrides, configs and return values as
the basic launcher, in-process (LauncherTestSuite) and from a `python task.py -m` app (IntegrationTestSuite).

No GPU is needed: the launcher hands out the fake ids 0 and 1 (hydra.launcher.gpus=[0,1]); the suites' tasks only
read their config. Every job is a process of its own, hence `slow`. The module's third suite,
BatchedSweeperTestSuite, is for sweepers that launch in batches, not for launchers.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
from hydra import compose, initialize
from hydra.core.config_store import ConfigStore
from hydra.core.plugins import Plugins
from hydra.errors import ConfigCompositionException
from hydra.plugins.launcher import Launcher
from hydra.test_utils.launcher_common_tests import IntegrationTestSuite, LauncherTestSuite

from hydra_plugins.ftexp_launchers.local_gpus import LocalGPUsLauncher

FAKE_GPUS = [0, 1]


@pytest.fixture(autouse=True)
def ids_count_from_zero(monkeypatch):
    """The fake ids are ids as the shell sees them: without CUDA_VISIBLE_DEVICES, 0 and 1 are taken as they are."""
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)


def test_hydra_finds_the_launcher_and_its_config_in_the_config_store():
    assert LocalGPUsLauncher.__name__ in [plugin.__name__ for plugin in Plugins.instance().discover(Launcher)]
    stored = ConfigStore.instance().load("hydra/launcher/local_gpus.yaml")
    assert (stored.provider, stored.node._target_) == (
        "ftexp_launchers",
        f"{LocalGPUsLauncher.__module__}.LocalGPUsLauncher",
    )
    assert (stored.node.gpus, stored.node.gpus_per_job) == (None, 1)


def test_a_wrong_value_or_unknown_key_of_the_launcher_is_refused_while_composing():
    refused = {
        "hydra.launcher.gpus_per_job=two": "Value 'two' of type 'str' could not be converted to Integer",
        "hydra.launcher.gpu_per_job=2": "Key 'gpu_per_job' not in 'LocalGPUsLauncherConf'",
    }
    with initialize(version_base="1.3"):
        for override, message in refused.items():
            with pytest.raises(ConfigCompositionException) as error:
                compose(overrides=["hydra/launcher=local_gpus", override], return_hydra_config=True)
            assert message in str(error.value.__cause__)


@pytest.mark.slow
def test_hydra_s_plugin_scan_imports_nothing_for_the_launcher_beyond_hydra_itself():
    """Hydra imports every plugin module on every start: ours add no module to what Hydra has loaded by then (no
    subprocess, cloudpickle, torch); the launcher's machinery, _core.py, is imported by launch() only."""
    probe = (
        "import sys, hydra, hydra.core.plugins; loaded = set(sys.modules)\n"
        "import hydra_plugins.ftexp_launchers.local_gpus, hydra_plugins.ftexp_launchers.config\n"
        "print(' '.join(sorted(set(sys.modules) - loaded)))\n"
    )
    imported = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert set(imported) <= {
        "hydra_plugins",
        "hydra_plugins.ftexp_launchers",
        "hydra_plugins.ftexp_launchers.config",
        "hydra_plugins.ftexp_launchers.local_gpus",
    }


# The suite finds each job's files in the job's working dir: Hydra's chdir, which is on when no version_base was ever
# set in the process (the suite run alone) and off once an earlier test composed with version_base="1.3" (Hydra keeps
# the version base process-wide); chdir=True gives the suite the same jobs in any test order.
@pytest.mark.slow
@pytest.mark.parametrize(
    ("launcher_name", "overrides"), [("local_gpus", [f"hydra.launcher.gpus={FAKE_GPUS}", "hydra.job.chdir=True"])]
)
class TestLocalGPUsLauncher(LauncherTestSuite):
    """Hydra's launcher suite: 1 and 2 jobs, config groups swept, strict keys, custom resolvers in the jobs."""


@pytest.mark.slow
@pytest.mark.parametrize(
    ("task_launcher_cfg", "extra_flags"),
    [({"defaults": [{"override hydra/launcher": "local_gpus"}], "hydra": {"launcher": {"gpus": FAKE_GPUS}}}, ["-m"])],
)
class TestLocalGPUsLauncherIntegration(IntegrationTestSuite):
    """Hydra's integration suite: job names, sweep dirs and subdirs, original cwd, to_absolute_path, in an app."""
