"""A registered model loads in a fresh environment built from nothing but its own logged
requirements (issue 16): public version pins, our code logged with it (`code_paths`), no
checkout on the path. The environment is a new venv filled by uv, as a user would build it
from `requirements.txt` of the model's artifacts."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from core.settings import Settings
from ml.train import train

pytestmark = pytest.mark.e2e  # builds a virtual environment (a minute with a warm uv cache)

LOAD = """
import json, sys
import mlflow.pyfunc
from mlflow.models import Model
path = sys.argv[1]
example = Model.load(path).load_input_example(path)
scores = mlflow.pyfunc.load_model(path).predict(example)
import ml.pyfunc
print(json.dumps({"scores": [float(x) for x in scores], "code": ml.pyfunc.__file__}))
"""


def test_a_registered_model_loads_in_a_fresh_environment_from_its_own_requirements(
    market_url: str, ml_settings: Settings, tiny_config, tmp_path: Path
) -> None:
    import mlflow
    from mlflow.models import Model

    config = tiny_config(models={"ridge": {"class": "ridge", "kwargs": {"alpha": 10.0}}})
    result = train(market_url, config_path=config)
    name = ml_settings.mlflow.model_name
    local = Path(mlflow.artifacts.download_artifacts(f"models:/{name}/{result.version}",
                                                     dst_path=str(tmp_path / "model")))  # fmt: skip
    requirements = (local / "requirements.txt").read_text().split()
    # Public pins only: no local build tag, no CPU-only distribution.
    assert not [r for r in requirements if "+" in r or r.startswith("xgboost-cpu")], requirements
    assert any(r.startswith("torch==") for r in requirements), requirements
    assert (local / "code" / "ml" / "pyfunc.py").is_file()

    uv = shutil.which("uv")
    assert uv, "uv builds the environment (make setup installs it)"
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "--python", "3.11", str(venv)], check=True)
    install = [uv, "pip", "install", "-q", "--python", str(venv / "bin" / "python"),
               "-r", str(local / "requirements.txt")]  # fmt: skip
    # Where pip is configured with a local wheel folder (this machine's CPU torch), uv is
    # given the same folder: the public pin `torch==X` picks that build there.
    if os.environ.get("PIP_FIND_LINKS"):
        install += ["--find-links", os.environ["PIP_FIND_LINKS"]]
    built = subprocess.run(install, capture_output=True, text=True, timeout=900)
    assert built.returncode == 0, built.stderr[-3000:]

    clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    loaded = subprocess.run(
        [str(venv / "bin" / "python"), "-c", LOAD, str(local)],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, env=clean_env,
    )  # fmt: skip
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    out = json.loads(loaded.stdout.strip().splitlines()[-1])
    # The model's classes came from the code logged with it, not from a checkout.
    assert out["code"].startswith(str(local / "code")), out["code"]

    example = Model.load(str(local)).load_input_example(str(local))
    here = np.asarray(mlflow.pyfunc.load_model(str(local)).predict(example), dtype=float)
    assert len(out["scores"]) == len(here) > 0
    assert np.isfinite(here).any(), here
    np.testing.assert_allclose(out["scores"], here, rtol=1e-6)
