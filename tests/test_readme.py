"""Every command shown in the README exists and answers --help."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def readme_commands():
    text = (ROOT / 'README.md').read_text()
    commands = []
    for block in re.findall(r'```bash\n(.*?)```', text, flags=re.S):
        for line in block.splitlines():
            line = line.split('#')[0].strip()
            if line:
                commands.append(line)
    return commands


COMMANDS = readme_commands()


def test_readme_shows_the_two_commands():
    assert 'make demo' in COMMANDS and 'make test' in COMMANDS
    ci = (ROOT / '.ci' / 'run').read_text()
    assert 'make setup' in ci and 'make test' in ci


@pytest.mark.parametrize('command', COMMANDS)
def test_readme_command_exists_and_answers_help(command):
    words = command.split()
    if words[0] == 'make':
        assert re.search(r'^%s:' % re.escape(words[1]), (ROOT / 'Makefile').read_text(), re.M)
        return
    if words[0].endswith('.sh'):
        script = ROOT / words[0]
        assert script.is_file() and script.stat().st_mode & 0o111
        subprocess.run(['bash', '-n', str(script)], check=True)
        return
    assert words[0] == 'python', command
    target = words[1:3] if words[1] == '-m' else words[1:2]
    proc = subprocess.run([sys.executable] + target + ['--help'], cwd=str(ROOT),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert 'usage' in proc.stdout.lower()
