"""Real hosts on one machine for the multi-machine tests: network namespaces
joined by a bridge to this one, each running Debian's OpenSSH server on its
own address. The namespaces share the file system, so every host has this
checkout and its .venv at the same path, as a cluster with a shared disk.

    with Hosts(tmp_path, 2) as hosts:
        hosts.addresses        # ['10.231.N.2', '10.231.N.3']
        hosts.ssh_config       # an ssh configuration file with the key to reach them

Needs root (`ip netns`) and sshd (`apt-get install openssh-server`);
`Hosts.unavailable()` says why not, for a skip.
"""
import os
import shutil
import subprocess
import time

SSHD = '/usr/sbin/sshd'


def _run(*command, check=True):
    return subprocess.run(command, capture_output=True, text=True, check=check)


class Hosts(object):
    """`count` namespaces fa<N>h1, fa<N>h2, ... on the bridge fa<N>br
    (10.231.N.0/24, this machine .1, the hosts .2, .3, ...). Hosts listed in
    `decoys` get first an interface of their own (aa0, 10.232.N.x, which no
    other host reaches), so that software taking "the first interface"
    takes the wrong one."""

    def __init__(self, folder, count=2, decoys=()):
        self.folder, self.count, self.decoys = str(folder), count, set(decoys)
        self.n = os.getpid() % 250 + 1
        self.tag = 'fa%d' % self.n
        self.bridge = self.tag + 'br'
        self.names = ['%sh%d' % (self.tag, i) for i in range(1, count + 1)]
        self.addresses = ['10.231.%d.%d' % (self.n, i + 1) for i in range(1, count + 1)]
        self.local = '10.231.%d.1' % self.n
        self.ssh_config = os.path.join(self.folder, 'ssh_config')

    @staticmethod
    def unavailable():
        """Why real hosts cannot be made here, or None."""
        if os.geteuid() != 0:
            return 'network namespaces need root (ip netns)'
        if not shutil.which('ip'):
            return 'iproute2 is not installed (apt-get install iproute2)'
        if not os.path.isfile(SSHD) or not shutil.which('ssh'):
            return 'OpenSSH is not installed (apt-get install openssh-server openssh-client)'
        probe = 'fa-probe-%d' % os.getpid()
        made = _run('ip', 'netns', 'add', probe, check=False)
        if made.returncode:
            return 'ip netns add fails here: %s' % made.stderr.strip()
        _run('ip', 'netns', 'del', probe, check=False)
        return None

    def __enter__(self):
        try:
            self._network()
            self._servers()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _network(self):
        # A firewall that drops forwarded packets (Docker sets FORWARD to
        # DROP) would also drop those between the hosts on the bridge.
        self.firewall = shutil.which('iptables') is not None and _run(
            'iptables', '-I', 'FORWARD', '-i', self.bridge, '-j', 'ACCEPT',
            check=False).returncode == 0
        _run('ip', 'link', 'add', self.bridge, 'type', 'bridge')
        _run('ip', 'addr', 'add', self.local + '/24', 'dev', self.bridge)
        _run('ip', 'link', 'set', self.bridge, 'up')
        for i, (name, address) in enumerate(zip(self.names, self.addresses), 1):
            _run('ip', 'netns', 'add', name)
            _run('ip', '-n', name, 'link', 'set', 'lo', 'up')
            if i in self.decoys:
                # A veth pair with both ends inside: no kernel module needed.
                _run('ip', '-n', name, 'link', 'add', 'aa0', 'type', 'veth', 'peer', 'name',
                     'aa1')
                _run('ip', '-n', name, 'addr', 'add', '10.232.%d.%d/24' % (self.n, i + 1),
                     'dev', 'aa0')
                for end in ('aa0', 'aa1'):
                    _run('ip', '-n', name, 'link', 'set', end, 'up')
            veth = '%sv%d' % (self.tag, i)
            _run('ip', 'link', 'add', veth, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', name)
            _run('ip', 'link', 'set', veth, 'master', self.bridge, 'up')
            _run('ip', '-n', name, 'addr', 'add', address + '/24', 'dev', 'eth0')
            _run('ip', '-n', name, 'link', 'set', 'eth0', 'up')
            _run('ip', '-n', name, 'route', 'add', 'default', 'via', self.local)

    def _servers(self):
        os.makedirs('/run/sshd', exist_ok=True)
        key, host_key = (os.path.join(self.folder, k) for k in ('user_key', 'host_key'))
        for path in (key, host_key):
            _run('ssh-keygen', '-q', '-t', 'ed25519', '-N', '', '-f', path)
        shutil.copyfile(key + '.pub', os.path.join(self.folder, 'authorized_keys'))
        for name, address in zip(self.names, self.addresses):
            config = os.path.join(self.folder, name + '.sshd_config')
            with open(config, 'w') as f:
                f.write('ListenAddress %s\nHostKey %s\nAuthorizedKeysFile %s\n'
                        'PermitRootLogin prohibit-password\nPasswordAuthentication no\n'
                        'KbdInteractiveAuthentication no\nUsePAM no\nStrictModes no\n'
                        'PidFile %s\n' % (address, host_key,
                                          os.path.join(self.folder, 'authorized_keys'),
                                          os.path.join(self.folder, name + '.pid')))
            _run('ip', 'netns', 'exec', name, SSHD, '-f', config,
                 '-E', os.path.join(self.folder, name + '.sshd.log'))
        with open(self.ssh_config, 'w') as f:
            f.write('Host 10.231.%d.*\n  User root\n  IdentityFile %s\n'
                    '  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n'
                    '  LogLevel ERROR\n  ConnectTimeout 10\n' % (self.n, key))
        for address in self.addresses:
            self.wait_for_ssh(address)

    def ssh(self, address, command, timeout=30):
        """Run `command` on a host over real ssh."""
        return subprocess.run(['ssh', '-F', self.ssh_config, '-o', 'BatchMode=yes', address,
                               command], capture_output=True, text=True, timeout=timeout)

    def wait_for_ssh(self, address, timeout=20):
        end = time.time() + timeout
        while True:
            proc = self.ssh(address, 'true')
            if proc.returncode == 0:
                return
            if time.time() > end:
                raise RuntimeError('sshd on %s does not answer: %s' % (address, proc.stderr))
            time.sleep(0.2)

    def pids(self, index):
        """Pids of the processes in host `index`'s namespace (0-based)."""
        out = _run('ip', 'netns', 'pids', self.names[index], check=False).stdout
        return [int(p) for p in out.split()]

    def __exit__(self, *exc):
        for name in self.names:
            for pid in self.pids(self.names.index(name)):
                try:
                    os.kill(pid, 9)
                except ProcessLookupError:
                    pass
            _run('ip', 'netns', 'del', name, check=False)
        _run('ip', 'link', 'del', self.bridge, check=False)
        if getattr(self, 'firewall', False):
            _run('iptables', '-D', 'FORWARD', '-i', self.bridge, '-j', 'ACCEPT', check=False)
        return False
