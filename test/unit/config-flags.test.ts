// kube-proxy's command line: the flag table covers every flag kube-proxy
// (Linux) has, the syntax is pflag's, bad values name the flag and what it
// accepts, and --help documents every option.

import { expect, test } from 'vitest';
import { loadConfig, ConfigError, RUN_FLAGS, formatRunHelp, DEFAULT_PIN_PATH } from '../../src/config/index.ts';
import { KUBE_PROXY_SCHEMA, type ObjectSchema } from '../../src/config/file.ts';

/** Loads flags with no --config; fails the test if a file is read. */
function flags(...argv: string[]) {
  return loadConfig(argv, () => expect.unreachable('no file should be read'));
}

function refused(...argv: string[]): ConfigError {
  try {
    flags(...argv);
  } catch (err) {
    if (err instanceof ConfigError) return err;
    throw err;
  }
  expect.unreachable('the flags were accepted');
}

/**
 * kube-proxy's flags on Linux (cmd/kube-proxy/app/options.go AddFlags, the
 * logging flags of k8s.io/component-base/logs/api/v1, --version, and the
 * cAdvisor flags its binary carries), plus the since-removed --proxy-port-range.
 */
const KUBE_PROXY_FLAGS = [
  'bind-address',
  'bind-address-hard-fail',
  'cleanup',
  'cluster-cidr',
  'config',
  'config-sync-period',
  'conntrack-max-per-core',
  'conntrack-min',
  'conntrack-tcp-be-liberal',
  'conntrack-tcp-timeout-close-wait',
  'conntrack-tcp-timeout-established',
  'conntrack-udp-timeout',
  'conntrack-udp-timeout-stream',
  'detect-local-mode',
  'feature-gates',
  'healthz-bind-address',
  'healthz-port',
  'hostname-override',
  'init-only',
  'iptables-localhost-nodeports',
  'iptables-masquerade-bit',
  'iptables-min-sync-period',
  'iptables-sync-period',
  'ipvs-exclude-cidrs',
  'ipvs-min-sync-period',
  'ipvs-scheduler',
  'ipvs-strict-arp',
  'ipvs-sync-period',
  'ipvs-tcp-timeout',
  'ipvs-tcpfin-timeout',
  'ipvs-udp-timeout',
  'kube-api-burst',
  'kube-api-content-type',
  'kube-api-qps',
  'kubeconfig',
  'masquerade-all',
  'master',
  'metrics-bind-address',
  'metrics-port',
  'nodeport-addresses',
  'oom-score-adj',
  'pod-bridge-interface',
  'pod-interface-name-prefix',
  'profiling',
  'proxy-mode',
  'proxy-port-range',
  'show-hidden-metrics-for-version',
  'write-config-to',
  'v',
  'vmodule',
  'logging-format',
  'log-flush-frequency',
  'log-json-info-buffer-size',
  'log-json-split-stream',
  'log-text-info-buffer-size',
  'log-text-split-stream',
  'version',
  'help',
  'boot-id-file',
  'machine-id-file',
];

/** A flag's entry in --help, with its lines joined. */
function entry(help: string, name: string): string {
  const at = help.search(new RegExp(`--${name}(=|\\n)`));
  const next = help.slice(at + 2).search(/\n {2}(-\w, | {4})--|\n\n/);
  return help
    .slice(at, at + 2 + next)
    .replace(/\s+/g, ' ')
    .trim();
}

function leafPaths(schema: ObjectSchema, prefix = ''): string[] {
  return Object.entries(schema).flatMap(([k, v]) => (typeof v === 'string' ? [prefix + k] : leafPaths(v, `${prefix}${k}.`)));
}

test("the table has every kube-proxy flag, and Switchyard's own apart", () => {
  const names = RUN_FLAGS.map((f) => f.name);
  expect(new Set(names).size, 'no flag twice').toBe(names.length);
  for (const name of KUBE_PROXY_FLAGS) expect(names, `--${name} is missing`).toContain(name);
  const ours = RUN_FLAGS.filter((f) => f.section === 'switchyard').map((f) => f.name);
  expect(ours.sort()).toStrictEqual([
    'bpf-affinity-max',
    'bpf-backends-max',
    'bpf-lb-algorithm',
    'bpf-maglev-table-size',
    'bpf-object',
    'bpf-pin-path',
    'bpf-services-max',
    'bpf-snat-port-range',
    'cgroup2-path',
    'manifests',
    'pod-interfaces',
    'service-node-port-range',
  ]);
  for (const f of RUN_FLAGS.filter((x) => x.section !== 'switchyard')) expect(KUBE_PROXY_FLAGS, `--${f.name} is not kube-proxy's`).toContain(f.name);
});

test('every flag writes a field of the file (or a command option), so flags and file merge field by field', () => {
  const fields = new Set(leafPaths(KUBE_PROXY_SCHEMA));
  for (const f of RUN_FLAGS) {
    for (const p of f.paths) {
      const known = fields.has(p) || /^(command|deprecated|ignored|switchyard)\./.test(p);
      expect(known, `--${f.name} writes ${p}, which the file does not have`).toBe(true);
    }
  }
});

test("--help documents every flag, marks the ignored ones, and puts Switchyard's options in their own section", () => {
  const help = formatRunHelp('Run the proxy.');
  for (const f of RUN_FLAGS) expect(help, `--${f.name} is not in --help`).toMatch(new RegExp(`--${f.name}\\b`));
  const kubeProxyAt = help.indexOf("kube-proxy's options");
  const loggingAt = help.indexOf("kube-proxy's logging options:");
  const oursAt = help.indexOf('Switchyard options');
  expect(kubeProxyAt, 'sections in order').toBeGreaterThan(0);
  expect(loggingAt, 'sections in order').toBeGreaterThan(kubeProxyAt);
  expect(oursAt, 'sections in order').toBeGreaterThan(loggingAt);
  const ours = help.slice(oursAt);
  for (const name of ['manifests', 'bpf-pin-path', 'bpf-object', 'pod-interfaces']) {
    expect(ours).toMatch(new RegExp(`--${name}\\b`));
    expect(help.indexOf(`--${name}`), `--${name} only in the Switchyard section`).toBeGreaterThan(oursAt);
  }
  expect(entry(help, 'profiling')).toMatch(/\[accepted for compatibility and ignored: there is no Go runtime to profile\]$/);
  expect(entry(help, 'proxy-mode')).toMatch(/^--proxy-mode=MODE Which dataplane programs Services: bpf \(tc eBPF\), ipvs, or auto .*\(default auto\)$/);
  expect(entry(help, 'healthz-port')).toMatch(/\[deprecated: use --healthz-bind-address\]$/);
  for (const f of RUN_FLAGS.filter((x) => x.ignored !== undefined)) expect(entry(help, f.name), f.name).toMatch(/accepted for compatibility and ignored: /);
  expect(help).toMatch(/every flag given on the command line overrides/);
  expect(help).toMatch(/kind: SwitchyardConfiguration/);
  expect(help).toMatch(new RegExp(`\\(default ${DEFAULT_PIN_PATH.replaceAll('/', '\\/')}\\)`));
  for (const line of help.split('\n')) expect(line.length <= 100 || !line.includes(' '), `line too long: ${line}`).toBeTruthy();
});

test('--flag=value, --flag value, boolean --flag and --flag=false', () => {
  const { config } = flags('--proxy-mode=ipvs', '--ipvs-scheduler', 'wrr', '--masquerade-all', '--ipvs-strict-arp=false', '--kube-api-qps', '20.5');
  expect(config.dataplane).toBe('ipvs');
  expect(config.ipvs.scheduler).toBe('wrr');
  expect(config.masqueradeAll).toBe(true);
  expect(config.ipvs.strictARP).toBe(false);
  expect(config.clientConnection.qps).toBe(20.5);
  for (const spelling of ['1', 't', 'T', 'TRUE', 'true', 'True']) expect(flags(`--masquerade-all=${spelling}`).config.masqueradeAll, spelling).toBe(true);
  for (const spelling of ['0', 'f', 'F', 'FALSE', 'false', 'False']) expect(flags(`--masquerade-all=${spelling}`).config.masqueradeAll, spelling).toBe(false);
});

test('-v in its short forms, and underscores read as dashes', () => {
  for (const argv of [['-v', '4'], ['-v=4'], ['-v4'], ['--v=4'], ['--v', '4']]) expect(flags(...argv).config.logging.verbosity, argv.join(' ')).toBe(4);
  expect(flags('--proxy_mode=bpf').config.dataplane).toBe('bpf');
  expect(flags('-h').config.command.help).toBe(true);
});

test('lists are comma-separated and a repeated list flag appends; a repeated scalar flag keeps the last', () => {
  const { config } = flags(
    '--proxy-mode=ipvs',
    '--ipvs-exclude-cidrs=10.0.0.0/8,192.168.0.0/16',
    '--ipvs-exclude-cidrs',
    '172.16.0.0/12',
    '--ipvs-scheduler=rr',
    '--ipvs-scheduler=sh',
    '--feature-gates=A=true,B=false',
    '--feature-gates=B=true',
    '--vmodule=proxier=4',
  );
  expect(config.ipvs.excludeCIDRs).toStrictEqual(['10.0.0.0/8', '192.168.0.0/16', '172.16.0.0/12']);
  expect(config.ipvs.scheduler).toBe('sh');
  expect(config.featureGates).toStrictEqual({ A: true, B: true });
  expect(config.logging.vmodule).toStrictEqual([{ filePattern: 'proxier', verbosity: 4 }]);
});

test('--nodeport-addresses takes CIDRs or primary', () => {
  expect(flags('--nodeport-addresses=primary').config.nodePortAddresses).toStrictEqual(['primary']);
  expect(flags('--nodeport-addresses', '10.0.0.0/8,fd00::/64').config.nodePortAddresses).toStrictEqual(['10.0.0.0/8', 'fd00::/64']);
  expect(refused('--nodeport-addresses=primary,10.0.0.0/8').message).toBe(
    '--nodeport-addresses: "primary": can\'t be combined with CIDRs: give either "primary" alone or a list of CIDRs',
  );
  expect(refused('--nodeport-addresses=10.0.0.0/8,eth0').message).toBe(
    '--nodeport-addresses: "eth0": must be a CIDR such as 10.244.0.0/16 or fd00:10:244::/56, or "primary" alone',
  );
});

test('the health and metrics addresses: a bare IP gets the default port, empty disables, the deprecated ports', () => {
  expect(flags('--healthz-bind-address=10.0.0.1').config.healthzBindAddress).toBe('10.0.0.1:10256');
  expect(flags('--metrics-bind-address=::').config.metricsBindAddress).toBe('[::]:10249');
  expect(flags('--metrics-bind-address=0.0.0.0:9999').config.metricsBindAddress).toBe('0.0.0.0:9999');
  expect(flags('--healthz-bind-address=').config.healthzBindAddress).toBe('');
  expect(flags('--metrics-port=0').config.metricsBindAddress).toBe('');
  // kube-proxy's --healthz-port only fills in an address that has no port.
  expect(flags('--healthz-port=1234').config.healthzBindAddress).toBe('0.0.0.0:10256');
  expect(flags('--healthz-bind-address=10.0.0.1', '--healthz-port=1234').config.healthzBindAddress).toBe('10.0.0.1:1234');
  expect(flags('--bind-address=fd00::1').config.healthzBindAddress).toBe('[::]:10256');
  expect(refused('--metrics-bind-address=localhost:10249').message).toBe(
    '--metrics-bind-address: "localhost:10249": must be IP or IP:port, and "localhost" is not an IP address',
  );
  expect(refused('--bind-address=node-1').message).toBe('--bind-address: "node-1": must be an IP address');
});

test('--hostname-override is trimmed and lower-cased; a blank one is refused', () => {
  expect(flags('--hostname-override= Node-7 ').config.hostnameOverride).toBe('node-7');
  expect(refused('--hostname-override=   ').message).toBe('--hostname-override: "   ": must not be blank');
});

test("Switchyard's flags", () => {
  const { config } = flags(
    '--manifests=/etc/m',
    '--bpf-pin-path=/run/sy',
    '--bpf-object=/opt/sy.o',
    '--pod-interfaces=veth*,cali*',
    '--bpf-affinity-max=4096',
    '--bpf-lb-algorithm=maglev',
    '--bpf-maglev-table-size=65521',
    '--cgroup2-path=/sys/fs/cgroup',
  );
  expect(config.switchyard).toStrictEqual({
    manifests: '/etc/m',
    bpf: {
      pinPath: '/run/sy',
      object: '/opt/sy.o',
      podInterfaces: ['veth*', 'cali*'],
      snatPortRange: '61000-65535',
      servicesMax: 1048576,
      backendsMax: 1048576,
      affinityMax: 4096,
      lbAlgorithm: 'maglev',
      maglevTableSize: 65521,
      cgroup2Path: '/sys/fs/cgroup',
    },
    serviceNodePortRange: '30000-32767',
  });
  expect(flags().config.switchyard.bpf.cgroup2Path, 'default: the cgroup2 mount, found at run time').toBe('');
  expect(flags('--cgroup2-path=none').config.switchyard.bpf.cgroup2Path).toBe('none');
  expect(refused('--cgroup2-path=sys/fs/cgroup').message).toBe(
    '--cgroup2-path: "sys/fs/cgroup": must be an absolute path (a cgroup v2 directory, such as /sys/fs/cgroup), or \'none\'',
  );
  expect(refused('--bpf-pin-path=sys/fs/bpf').message).toBe(
    '--bpf-pin-path: "sys/fs/bpf": must be an absolute path (a directory on a bpffs, such as /sys/fs/bpf/switchyard)',
  );
  expect(flags().config.switchyard.bpf.podInterfaces).toStrictEqual(['veth*']);
});

test('command options: --cleanup, --master, --write-config-to, --version', () => {
  const { config } = flags('--cleanup', '--master=https://10.0.0.1:6443', '--write-config-to=/tmp/c.yaml', '--init-only');
  expect(config.command).toStrictEqual({
    configFile: '',
    cleanup: true,
    initOnly: true,
    writeConfigTo: '/tmp/c.yaml',
    master: 'https://10.0.0.1:6443',
    help: false,
    version: false,
  });
  expect(flags('--version').config.command.version).toBe(true);
  expect(flags('--version=raw').config.command.version).toBe('raw');
});

test('--help and --version do not read the file or validate it', () => {
  expect(loadConfig(['--config=/etc/kp.yaml', '--help'], () => expect.unreachable('read')).config.command.help).toBe(true);
  expect(loadConfig(['--proxy-mode=nonsense', '--version'], () => expect.unreachable('read')).config.command.version).toBe(true);
  // ... but a flag that cannot be parsed is still an error, as with pflag.
  expect(refused('--help', '--oom-score-adj=lots').message).toBe('--oom-score-adj: "lots": must be an integer from -2147483648 to 2147483647');
});

test('an unknown flag is refused, naming it and the nearest known one', () => {
  const err = refused('--bogus-flag');
  expect(err.field).toBe('--bogus-flag');
  expect(err.message).toMatch(/^--bogus-flag: unknown flag; `switchyard run --help` lists them$/);
  expect(refused('--proxymode=ipvs').message).toBe('--proxymode: unknown flag (did you mean --proxy-mode?); `switchyard run --help` lists them');
  expect(refused('--sync-period=1s').message).toBe('--sync-period: unknown flag; `switchyard run --help` lists them');
});

test('--proxy-mode with an unknown mode names the allowed ones', () => {
  const err = refused('--proxy-mode=foo');
  expect(err.message).toBe(
    '--proxy-mode: "foo": must be one of bpf, ipvs, auto (Switchyard\'s dataplanes), iptables or nftables (kube-proxy\'s, which mean auto here), or empty (auto)',
  );
  expect(refused('--proxy-mode=kernelspace').message).toMatch(
    /^--proxy-mode: "kernelspace": is kube-proxy's Windows mode; on Linux, mode must be one of bpf, /,
  );
});

test('bad values name the flag, the value and what is allowed', () => {
  const cases: [string[], string][] = [
    [
      ['--ipvs-sync-period=30'],
      '--ipvs-sync-period: "30": must be a duration such as "30s", "1m0s" or "500ms" (units ns, us, ms, s, m, h); this one has a number without a unit',
    ],
    [['--masquerade-all=yes'], '--masquerade-all: "yes": must be true or false'],
    [['--iptables-masquerade-bit=32'], '--iptables-masquerade-bit: "32": must be from 0 to 31'],
    [['--oom-score-adj=-1001'], '--oom-score-adj: "-1001": must be from -1000 to 1000'],
    [['--kube-api-burst=-1'], '--kube-api-burst: "-1": must be greater than or equal to 0'],
    [
      ['--proxy-mode=ipvs', '--ipvs-scheduler=fastest'],
      '--ipvs-scheduler: "fastest": must be one of rr, wrr, lc, wlc, lblc, lblcr, sh, dh, sed, nq, mh, or empty (rr)',
    ],
    [['--proxy-mode=ipvs', '--ipvs-tcp-timeout=-5s'], '--ipvs-tcp-timeout: "-5s": must be greater than or equal to 0 (0 leaves the kernel\'s)'],
    [
      ['--cluster-cidr=10.244.0.0/16,fd00::/64,10.1.0.0/16'],
      '--cluster-cidr: "10.244.0.0/16,fd00::/64,10.1.0.0/16": must be one CIDR or a dual-stack pair, one IPv4 and one IPv6 (such as 10.244.0.0/16,fd00:10:244::/56)',
    ],
    [
      ['--detect-local-mode=PodCIDR'],
      '--detect-local-mode: "PodCIDR": must be one of ClusterCIDR, NodeCIDR, BridgeInterface, InterfaceNamePrefix, or empty (ClusterCIDR)',
    ],
    [
      ['--detect-local-mode=BridgeInterface'],
      '--detect-local-mode: "BridgeInterface": needs the bridge\'s name in detectLocal.bridgeInterface (--pod-bridge-interface)',
    ],
    [['--feature-gates=Foo'], '--feature-gates: "Foo": must be name=true|false pairs separated by commas, and "Foo" is not one'],
    [['--vmodule=proxier'], '--vmodule: "proxier": must be pattern=N pairs separated by commas, and "proxier" is not one'],
    [['--logging-format=xml'], '--logging-format: "xml": must be text or json'],
    [['--show-hidden-metrics-for-version=v1.33'], '--show-hidden-metrics-for-version: "v1.33": must be MAJOR.MINOR, such as "1.33", or empty'],
    [['--config-sync-period=0'], '--config-sync-period: "0": must be greater than 0'],
    [['--proxy-port-range=2000-1000'], '--proxy-port-range: "2000-1000": must be a port range such as 30000-32767 or 30000+2767, or empty'],
  ];
  for (const [argv, message] of cases) expect(refused(...argv).message, argv.join(' ')).toBe(message);
});

test('a missing value, a value that is a flag, and positional arguments', () => {
  expect(refused('--proxy-mode').message).toBe('--proxy-mode: needs a value (MODE)');
  expect(refused('--hostname-override', '--cleanup').message).toBe('--hostname-override: needs a value (NAME), but the next argument is the flag --cleanup');
  expect(refused('--masquerade-all', 'false').message).toBe(
    '"false": unexpected argument: switchyard run takes flags only (a boolean flag takes its value after "=": --masquerade-all=false)',
  );
  expect(refused('--', '--cleanup').message).toBe('"--cleanup": unexpected argument: switchyard run takes flags only');
});

test('every flag problem is reported at once', () => {
  const err = refused('--bogus', '--masquerade-all=maybe', 'extra');
  expect(err.problems.map((p) => p.field)).toStrictEqual(['--bogus', '--masquerade-all', 'extra']);
  expect(err.message).toMatch(/^3 problems:\n {2}--bogus: unknown flag/);
});

test('ignored and deprecated options are accepted with a warning', () => {
  const { warnings } = flags('--profiling', '--healthz-port=10256', '--proxy-port-range=30000-32767');
  expect(warnings.map((w) => w.message)).toStrictEqual([
    '--profiling: "true": accepted for compatibility and ignored: there is no Go runtime to profile',
    '--proxy-port-range: "30000-32767": accepted for compatibility and ignored: Switchyard has no use for it',
    '--healthz-port: is deprecated: use --healthz-bind-address',
  ]);
  expect(flags('--profiling=false').warnings, 'an ignored option left at its default says nothing').toStrictEqual([]);
});
