"""Static checks of the parts that only run inside the Slicer application (no Qt here).

The widget code, the .ui file, the parameter node and the CMake lists must agree: a widget name
typo, a parameter bound to the wrong widget type, or a file missing from the CMake lists would
only show up when Slicer loads the module.
"""
from __future__ import annotations

import ast
import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
MODULE = REPO / "SlicerSneakyNet"
MODULE_PY = MODULE / "SneakyNet.py"
UI_FILE = MODULE / "Resources" / "UI" / "SneakyNet.ui"
QT_WIDGETS = {"QLabel", "QCheckBox", "QComboBox", "QPushButton", "QProgressBar", "QWidget", "QLineEdit",
              "QSpinBox", "QDoubleSpinBox", "QPlainTextEdit", "QTextEdit", "QGroupBox", "QRadioButton"}


@pytest.fixture(scope="module")
def tree() -> ast.Module:
    return ast.parse(MODULE_PY.read_text(encoding="utf-8"), filename=str(MODULE_PY))


@pytest.fixture(scope="module")
def ui() -> ET.Element:
    return ET.parse(UI_FILE).getroot()


def ui_widgets(ui: ET.Element) -> dict[str, ET.Element]:
    return {w.get("name"): w for w in ui.iter("widget")}


def attribute_chain_names(tree: ast.AST, prefix: tuple[str, ...]) -> set[str]:
    """Names ``x`` used as ``self.<prefix...>.x`` anywhere in the module."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            chain, inner = [], node.value
            while isinstance(inner, ast.Attribute):
                chain.insert(0, inner.attr)
                inner = inner.value
            if isinstance(inner, ast.Name) and inner.id == "self" and tuple(chain) == prefix:
                names.add(node.attr)
    return names


def parameter_fields(tree: ast.Module) -> dict[str, str]:
    """Fields of the @parameterNodeWrapper class: name -> annotation source."""
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
                getattr(d, "id", None) == "parameterNodeWrapper" for d in node.decorator_list):
            return {item.target.id: ast.unparse(item.annotation) for item in node.body
                    if isinstance(item, ast.AnnAssign)}
    raise AssertionError("no @parameterNodeWrapper class in SneakyNet.py")


def bound_widgets(ui: ET.Element) -> dict[str, ET.Element]:
    """Widgets carrying the SlicerParameterName dynamic property: parameter name -> widget."""
    out = {}
    for widget in ui.iter("widget"):
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                out[prop.find("string").text] = widget
    return out


def test_template_layout_module_widget_logic_test(tree):
    classes = {n.name: [ast.unparse(b) for b in n.bases] for n in tree.body if isinstance(n, ast.ClassDef)}
    assert "ScriptedLoadableModule" in classes["SneakyNet"]
    assert "ScriptedLoadableModuleWidget" in classes["SneakyNetWidget"]
    assert {"ScriptedLoadableModuleLogic", "BoneSegmentationLogic"} <= set(classes["SneakyNetLogic"])
    assert "ScriptedLoadableModuleTest" in classes["SneakyNetTest"]
    source = MODULE_PY.read_text(encoding="utf-8")
    assert 'slicer.util.loadUI(self.resourcePath("UI/SneakyNet.ui"))' in source


def test_every_widget_the_code_uses_exists_in_the_ui_file(tree, ui):
    used = attribute_chain_names(tree, ("ui",))
    assert {"segmentButton", "cancelButton", "progressBar", "statusLabel", "exportButton"} <= used
    missing = used - set(ui_widgets(ui))
    assert not missing, f"SneakyNet.py uses self.ui.{sorted(missing)} that SneakyNet.ui does not define"


def test_segment_button_says_segment_bones(ui):
    button = ui_widgets(ui)["segmentButton"]
    text = [p.find("string").text for p in button.findall("property") if p.get("name") == "text"]
    assert text == ["Segment bones"]


def test_parameter_node_and_ui_bindings_agree(tree, ui):
    fields = parameter_fields(tree)
    bound = bound_widgets(ui)
    assert set(fields) == set(bound), f"fields without widget: {set(fields) - set(bound)}, " \
                                      f"widgets without field: {set(bound) - set(fields)}"


def test_bound_widget_types_fit_slicer_gui_connectors(tree, ui):
    """Slicer's parameterNodeWrapper connects exact widget classes per type (guiConnectors.py)."""
    fields = parameter_fields(tree)
    for name, widget in bound_widgets(ui).items():
        cls, annotation = widget.get("class"), fields[name]
        if annotation == "bool":
            assert cls in ("QCheckBox", "QPushButton"), (name, cls)
        elif annotation.startswith("Annotated[str, Choice("):
            assert cls == "QComboBox", (name, cls)
        elif annotation.startswith("Annotated[float, WithinRange("):
            assert cls in ("ctkSliderWidget", "QDoubleSpinBox"), (name, cls)
        elif annotation == "pathlib.Path":
            assert cls in ("ctkPathLineEdit", "ctkDirectoryButton"), (name, cls)
        elif annotation.startswith("vtkMRML"):
            assert cls == "qMRMLNodeComboBox", (name, cls)
            types = [s.text for p in widget.findall("property") if p.get("name") == "nodeTypes"
                     for s in p.iter("string")]
            assert types == [annotation], (name, types)
        else:
            raise AssertionError(f"parameter {name}: no GUI connector rule known for {annotation}")


def test_custom_widgets_are_declared_and_connections_name_real_widgets(ui):
    declared = {c.find("class").text for c in ui.iter("customwidget")}
    used = {w.get("class") for w in ui.iter("widget")}
    assert used - QT_WIDGETS <= declared, f"undeclared custom widgets: {used - QT_WIDGETS - declared}"
    names = set(ui_widgets(ui))
    for connection in ui.iter("connection"):
        assert connection.find("sender").text in names and connection.find("receiver").text in names
    # every MRML node selector gets the scene
    selectors = {w.get("name") for w in ui.iter("widget") if w.get("class") == "qMRMLNodeComboBox"}
    receivers = {c.find("receiver").text for c in ui.iter("connection")
                 if c.find("signal").text == "mrmlSceneChanged(vtkMRMLScene*)"}
    assert selectors <= receivers


def test_widget_only_calls_logic_methods_that_exist(tree):
    from SneakyNetLib.logic import BoneSegmentationLogic

    logic_class = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "SneakyNetLogic")
    own = {f.name for f in logic_class.body if isinstance(f, ast.FunctionDef)}
    for name in attribute_chain_names(tree, ("logic",)):
        assert hasattr(BoneSegmentationLogic, name) or name in own, f"self.logic.{name} does not exist"


def test_module_logic_is_the_gui_free_logic_on_the_given_scene(module_file):
    import slicer

    from SneakyNetLib.logic import BoneSegmentationLogic

    scene = slicer.vtkMRMLScene()
    logic = module_file.SneakyNetLogic(scene)
    assert isinstance(logic, BoneSegmentationLogic) and logic.scene is scene
    assert logic.moduleName == "SneakyNet" and logic.missingDependencies() == []


def test_help_text_names_the_demo_model_and_cites_the_paper(module_file, monkeypatch):
    from types import SimpleNamespace

    import slicer

    connections = []
    monkeypatch.setattr(slicer, "app", SimpleNamespace(connect=lambda *args: connections.append(args)), raising=False)
    parent = SimpleNamespace()
    module_file.SneakyNet(parent)
    # the sample data is registered once the application (and its Sample Data module) has started
    assert connections == [("startupCompleted()", module_file.registerSampleData)]
    assert parent.title == "SneakyNet" and parent.categories == ["Segmentation"]
    assert "SneakyNetPhantomCT" in parent.helpText and "Scripts/batch_segment.py" in parent.helpText
    assert "phantom-trained, not for clinical use" in parent.helpText
    assert "Schnider" in parent.helpText
    assert "Improved distinct bone segmentation in upper-body CT through multi-resolution networks" in parent.helpText


# ---------------------------------------------------------------------------------- CMake


def cmake_list(text: str, variable: str) -> list[str]:
    match = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S)
    assert match, f"{variable} not set"
    return [item.replace("${MODULE_NAME}", "SneakyNet") for item in match.group(1).split()]


def test_module_cmake_lists_match_the_files_on_disk():
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    assert "set(MODULE_NAME SneakyNet)" in text
    scripts = cmake_list(text, "MODULE_PYTHON_SCRIPTS")
    resources = cmake_list(text, "MODULE_PYTHON_RESOURCES")
    on_disk_py = sorted(p.relative_to(MODULE).as_posix() for p in MODULE.rglob("*.py")
                        if "__pycache__" not in p.parts and p.parts[len(MODULE.parts)] != "Scripts")
    on_disk_res = sorted(p.relative_to(MODULE).as_posix() for folder in ("Resources", "Scripts")
                         for p in (MODULE / folder).rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert sorted(scripts) == on_disk_py
    assert sorted(resources) == on_disk_res
    # Slicer loads every top-level .py of the module folder as a module: only SneakyNet.py may be there
    assert [p.name for p in MODULE.glob("*.py")] == ["SneakyNet.py"]
    assert "Scripts/batch_segment.py" in resources and "Scripts/segment_worker.py" in resources
    assert "WITH_GENERIC_TESTS" in text and "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_icons_are_128_pixel_pngs():
    import vtk

    for path in (REPO / "Resources/Icons/SneakyNet.png", MODULE / "Resources/Icons/SneakyNet.png"):
        reader = vtk.vtkPNGReader()
        reader.SetFileName(str(path))
        reader.Update()
        assert reader.GetOutput().GetDimensions()[:2] == (128, 128), path
