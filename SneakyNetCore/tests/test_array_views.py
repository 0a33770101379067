"""``sitk.GetArrayViewFromImage`` returns a view into the image's buffer without keeping the image
alive; called on a temporary (``view(f(x))``) the buffer can be freed while the array is still read,
which gives random values (it once made an importer test flaky). Every call passes a named image."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = ("SneakyNetCore/src", "SneakyNetCore/tests", "SneakyNetCore/benchmarks", "SlicerSneakyNet", "Testing")


def views_of_temporaries(root: Path, folders: tuple[str, ...] = FOLDERS) -> list[str]:
    """``"path:line"`` of each ``GetArrayViewFromImage`` call whose argument is not a name or attribute."""
    out = []
    for folder in folders:
        for path in sorted((root / folder).rglob("*.py")):
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
            for node in ast.walk(tree):
                func = node.func if isinstance(node, ast.Call) else None
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
                if name == "GetArrayViewFromImage" and node.args \
                        and not isinstance(node.args[0], (ast.Name, ast.Attribute)):
                    out.append(f"{path.relative_to(root).as_posix()}:{node.lineno}")
    return out


def test_the_finder_sees_a_view_of_a_temporary(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "m.py").write_text(
        "import SimpleITK as sitk\n"
        "def ok(img):\n    return sitk.GetArrayViewFromImage(img).sum()\n"
        "def bad(img):\n    return sitk.GetArrayViewFromImage(sitk.Abs(img)).sum()\n")
    assert views_of_temporaries(tmp_path, ("pkg",)) == ["pkg/m.py:5"]


def test_no_array_view_of_a_temporary_image():
    found = views_of_temporaries(ROOT)
    assert not found, "GetArrayViewFromImage on a temporary image (use GetArrayFromImage): " + ", ".join(found)
