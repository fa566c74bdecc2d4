"""The package tree is the architecture: each layer imports only lower ones, and each folder pins its public names."""

import ast
import importlib
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LAYERS = {
    "language": 0,
    "compute": 1,
    "quality": 2,
    "retrieval": 2,
    "orchestration": 3,
    "streaming": 4,
    "serving": 5,
    "demo": 6,
}
RESOURCES_LAYER = 0.5
PACKAGES = ["feature_assets", *(f"feature_assets.{folder}" for folder in LAYERS), "resources"]


def layer_of(module: str) -> tuple[str, float] | None:
    """Return the folder and layer of a project module name, or None for third-party modules."""
    parts = module.split(".")
    if parts[0] == "resources":
        return "resources", RESOURCES_LAYER
    if parts[0] == "feature_assets" and len(parts) > 1 and parts[1] in LAYERS:
        return parts[1], LAYERS[parts[1]]
    return None


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def project_modules() -> list[Path]:
    return sorted([*ROOT.joinpath("feature_assets").rglob("*.py"), *ROOT.joinpath("resources").rglob("*.py")])


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_a_module_imports_only_its_own_folder_and_lower_layers(path):
    module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
    own = layer_of(module)
    if own is None:
        return
    folder, layer = own
    for name in imported_modules(path):
        if name == "feature_assets":
            assert folder == "demo", f"{module} imports the top package; import from the defining module instead"
            continue
        other = layer_of(name)
        if other is None or other[0] == folder:
            continue
        assert other[1] < layer, f"{module} (layer {folder}) imports {name} (layer {other[0]}), a higher or equal one"
        if folder == "resources":
            assert other[0] == "language", f"{module}: resources may import only the language, not {name}"


@pytest.mark.parametrize("path", project_modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_about_400_lines(path):
    assert len(path.read_text().splitlines()) <= 420


@pytest.mark.parametrize("package", PACKAGES)
def test_each_package_exports_exactly_its_public_names_sorted(package):
    module = importlib.import_module(package)
    exported = getattr(module, "__all__", [])
    assert exported == sorted(exported)
    for name in exported:
        assert getattr(module, name) is not None
    defined_here = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_") and not isinstance(value, type(sys)) and name != "TYPE_CHECKING"
    }
    assert defined_here <= set(exported)


def test_the_top_package_exports_the_language_retrieval_and_assembly():
    import feature_assets

    assert feature_assets.__all__ == [
        "Aggregation",
        "Entity",
        "FeatureRepository",
        "FeatureService",
        "FeatureView",
        "Field",
        "OnDemandFeatureView",
        "ParquetSource",
        "PushSource",
        "QualityPolicy",
        "RequestSource",
        "StreamSource",
        "TrainingSet",
        "build_definitions",
        "get_historical_features",
    ]
    from feature_assets.orchestration.project import build_definitions
    from feature_assets.retrieval.point_in_time import get_historical_features

    assert feature_assets.build_definitions is build_definitions
    assert feature_assets.get_historical_features is get_historical_features


@pytest.mark.parametrize(
    "module",
    [
        "feature_assets",
        "resources.online_store",
        "resources.offline_store",
        "definitions",
        "feature_assets.demo.main",
        "feature_assets.serving.cli.quality",
        *PACKAGES[1:],
    ],
)
def test_each_top_module_imports_first_in_a_fresh_interpreter(module):
    done = subprocess.run(
        [sys.executable, "-c", f"import {module}"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
