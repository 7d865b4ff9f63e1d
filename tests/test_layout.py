"""The house's import rules, read from the source tree: the libraries import
nothing above them, plumbing none of the paths, inference and evaluation no
training code, evaluation no inference code, and nothing but the benchmarks
imports the benchmarks (every import counted, also those inside functions)."""
import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ('train', 'test', 'test_rec_nme', 'config', 'sample_config')


def imported_modules(path):
    """Absolute names of the modules a source file imports."""
    tree = ast.parse(path.read_text(), str(path))
    package = '.'.join(path.relative_to(ROOT).with_suffix('').parts[:-1])
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                module = '.'.join(base + ([node.module] if node.module else []))
            else:
                module = node.module
            found.add(module)
            found.update('%s.%s' % (module, alias.name) for alias in node.names)
    return found


def sources(folder):
    return sorted((ROOT / folder).rglob('*.py'))


def offending(folders, forbidden):
    """'file: module' for every import in `folders` of a module under one of
    the `forbidden` prefixes."""
    bad = []
    for folder in folders:
        for path in sources(folder):
            for module in imported_modules(path):
                if any(module == f or module.startswith(f + '.') for f in forbidden):
                    bad.append('%s: %s' % (path.relative_to(ROOT), module))
    return sorted(set(bad))


@pytest.mark.parametrize('folders, forbidden', [
    (('symbol', 'data', 'essh'), ('core', 'tools', 'benchmarks') + SCRIPTS),
    (('core/plumbing',), ('core.training', 'core.inference', 'core.evaluation')),
    (('core/inference', 'core/evaluation'), ('core.training',)),
    (('core/evaluation',), ('core.inference',)),
    (('core',), ('tools', 'benchmarks') + SCRIPTS),
    (('tools',), ('benchmarks',)),
])
def test_imports_point_one_way(folders, forbidden):
    assert offending(folders, forbidden) == []


def test_the_rules_see_an_import_inside_a_function(tmp_path, monkeypatch):
    """The reader finds a function-level and a relative import (so a rule
    that passes is not passing for want of seeing)."""
    fake = tmp_path / 'core' / 'inference' / 'x.py'
    fake.parent.mkdir(parents=True)
    fake.write_text('def f():\n    from core.training import trainer\n'
                    'from ..plumbing import config\n')
    monkeypatch.setattr(__import__(__name__), 'ROOT', tmp_path)
    assert imported_modules(fake) >= {'core.training.trainer', 'core.plumbing.config'}
    assert offending(('core/inference',), ('core.training',)) == [
        'core/inference/x.py: core.training', 'core/inference/x.py: core.training.trainer']


def test_core_folders_are_the_four_paths():
    folders = sorted(p.name for p in (ROOT / 'core').iterdir()
                     if p.is_dir() and p.name != '__pycache__')
    assert folders == ['evaluation', 'inference', 'plumbing', 'training']
    assert sorted(p.name for p in (ROOT / 'core').glob('*.py')) == ['__init__.py']
