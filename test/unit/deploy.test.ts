// deploy/ checked offline against Kubernetes' schemas, then for what a
// kube-proxy replacement needs (issue 10 item 8):
// - schemas: every document through the validator that kubernetes-models
//   5.1.0 (pinned devDependency) generated from Kubernetes 1.34's OpenAPI
//   (types, enums, required fields), plus strict field checking as the API
//   server's fieldValidation=Strict does (an unknown field such as
//   "livenesProbe" is an error), using the field tables of
//   @kubernetes/client-node 2.0.1 (generated from the same OpenAPI);
// - the DaemonSet: Linux nodes only, requests, probes on /livez and
//   /healthz at the health port the configuration serves, capabilities
//   instead of privileged for the daemon, the host's bpffs and cgroup v2;
// - the ConfigMap: its config.conf loads with `switchyard run --config`
//   (pod-interface patterns of the common CNIs), its kubeconfig.conf points
//   at the control plane and not at the `kubernetes` Service;
// - RBAC: kube-proxy's read rights and Events.

import * as k8s from '@kubernetes/client-node';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { describe, expect, test } from 'vitest';
import { parse, parseAllDocuments } from 'yaml';
import { loadConfig } from '../../src/config/index.ts';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
type Obj = Record<string, unknown>;

function docs(file: string): Obj[] {
  return parseAllDocuments(readFileSync(join(ROOT, 'deploy', file), 'utf8')).map((d) => d.toJS() as Obj);
}
const ALL = ['configmap.yaml', 'daemonset.yaml', 'rbac.yaml', 'cleanup-kube-proxy.yaml', 'cleanup-switchyard.yaml'].flatMap((f) =>
  docs(f).map((doc) => ({ file: f, doc })),
);

// kubernetes-models' generated validators, by apiVersion/kind.
interface Validating {
  validate(): void;
}
const MODELS: Record<string, new (o: Obj) => Validating> = {
  'v1/ConfigMap': ConfigMap as unknown as new (o: Obj) => Validating,
  'v1/ServiceAccount': ServiceAccount as unknown as new (o: Obj) => Validating,
  'apps/v1/DaemonSet': DaemonSet as unknown as new (o: Obj) => Validating,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole as unknown as new (o: Obj) => Validating,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding as unknown as new (o: Obj) => Validating,
};
// client-node's model class names, for the strict field walk.
const CLASSES: Record<string, string> = {
  'v1/ConfigMap': 'V1ConfigMap',
  'v1/ServiceAccount': 'V1ServiceAccount',
  'apps/v1/DaemonSet': 'V1DaemonSet',
  'rbac.authorization.k8s.io/v1/ClusterRole': 'V1ClusterRole',
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': 'V1ClusterRoleBinding',
};

/** Schema errors of one document: the generated validator's, then unknown fields. */
function schemaErrors(doc: Obj): string[] {
  const id = `${String(doc['apiVersion'])}/${String(doc['kind'])}`;
  const Model = MODELS[id];
  const cls = CLASSES[id];
  if (!Model || !cls) return [`${id}: no schema vendored for this kind`];
  const errors: string[] = [];
  try {
    new Model(doc).validate();
  } catch (err) {
    errors.push((err as Error).message);
  }
  unknownFields(doc, cls, '', errors);
  return errors;
}

interface Attr {
  readonly baseName: string;
  readonly type: string;
}
type ModelClass = { getAttributeTypeMap(): Attr[] };

function unknownFields(value: unknown, type: string, path: string, errors: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array?.[1]) {
    if (Array.isArray(value)) value.forEach((v, i) => unknownFields(v, array[1] ?? '', `${path}[${i}]`, errors));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map?.[1]) {
    if (typeof value === 'object') for (const [k, v] of Object.entries(value)) unknownFields(v, map[1], `${path}.${k}`, errors);
    return;
  }
  const model = (k8s as unknown as Record<string, ModelClass | undefined>)[type];
  if (!model || typeof model.getAttributeTypeMap !== 'function' || typeof value !== 'object' || Array.isArray(value)) return;
  const attrs = new Map(model.getAttributeTypeMap().map((a) => [a.baseName, a.type]));
  for (const [k, v] of Object.entries(value)) {
    const t = attrs.get(k);
    if (t === undefined) errors.push(`${path || '.'}: unknown field "${k}" (${type})`);
    else unknownFields(v, t, `${path}.${k}`, errors);
  }
}

describe("Kubernetes' schemas", () => {
  test.each(ALL.map((a) => [`${a.file}: ${String(a.doc['kind'])} ${String((a.doc['metadata'] as Obj)['name'])}`, a.doc] as const))('%s', (_name, doc) => {
    expect(schemaErrors(doc)).toEqual([]);
  });

  test('the check is not vacuous: a misspelt field, a wrong type and a missing required field are caught', () => {
    const ds = structuredClone(ALL.find((a) => a.doc['kind'] === 'DaemonSet')?.doc) as Obj;
    const c = daemonSetSpec(ds).containers[0] as Obj;
    c['livenesProbe'] = c['livenessProbe'];
    (c['ports'] as Obj[])[0] = { containerPort: 'ten' };
    delete (daemonSetSpec(ds).initContainers[0] as Obj)['name'];
    const errors = schemaErrors(ds).join('\n');
    expect(errors).toMatch(/unknown field "livenesProbe" \(V1Container\)/);
    expect(errors).toMatch(/containerPort must be integer/);
    expect(errors).toMatch(/initContainers\/0 must have required property name/);
  });
});

interface PodSpec {
  containers: Obj[];
  initContainers: Obj[];
  volumes: Obj[];
  nodeSelector?: Record<string, string>;
  serviceAccountName?: string;
  hostNetwork?: boolean;
}
function daemonSetSpec(ds: Obj): PodSpec {
  return ((ds['spec'] as Obj)['template'] as { spec: PodSpec }).spec;
}

const ds = ALL.find((a) => a.doc['kind'] === 'DaemonSet')?.doc as Obj;
const pod = daemonSetSpec(ds);
const daemon = pod.containers.find((c) => c['name'] === 'switchyard') as Obj;
const cm = ALL.find((a) => a.doc['kind'] === 'ConfigMap')?.doc as { data: Record<string, string> };

describe('the DaemonSet', () => {
  test('Linux nodes, host network, resource requests on every container', () => {
    expect(pod.nodeSelector).toEqual({ 'kubernetes.io/os': 'linux' });
    expect(pod.hostNetwork).toBe(true);
    for (const c of [...pod.containers, ...pod.initContainers]) {
      const req = (c['resources'] as { requests?: Obj } | undefined)?.requests;
      expect(req?.['cpu'], `${String(c['name'])} requests cpu`).toBeDefined();
      expect(req?.['memory'], `${String(c['name'])} requests memory`).toBeDefined();
    }
  });

  test('the daemon: capabilities, not privileged; the init container runs --init-only with privileges', () => {
    const sc = daemon['securityContext'] as { privileged?: boolean; capabilities: { add: string[]; drop: string[] } };
    expect(sc.privileged ?? false).toBe(false);
    expect(sc.capabilities.drop).toEqual(['ALL']);
    expect(sc.capabilities.add).toEqual(expect.arrayContaining(['NET_ADMIN', 'BPF']));
    expect(sc.capabilities.add).not.toContain('SYS_ADMIN');
    const init = pod.initContainers[0] as { args: string[]; securityContext: { privileged: boolean } };
    expect(init.args).toContain('--init-only');
    expect(init.securityContext.privileged).toBe(true);
  });

  test("probes on kube-proxy's endpoints at the port the configuration serves health on", () => {
    const cfg = loadDeployConfig();
    const port = Number(cfg.healthzBindAddress.split(':').pop());
    expect(port).toBe(10256);
    expect(daemon['livenessProbe']).toMatchObject({ httpGet: { path: '/livez', port } });
    expect(daemon['readinessProbe']).toMatchObject({ httpGet: { path: '/healthz', port } });
    expect(daemon['ports']).toEqual(expect.arrayContaining([expect.objectContaining({ containerPort: port, hostPort: port })]));
  });

  test("the host's bpffs (at the pin path's parent) and cgroup v2 are mounted", () => {
    const hostPath = (name: string) => (pod.volumes.find((v) => v['name'] === name)?.['hostPath'] as Obj | undefined)?.['path'];
    const mounts = daemon['volumeMounts'] as Obj[];
    const mountOf = (vol: string) => mounts.find((m) => m['name'] === vol);
    expect(hostPath('bpffs')).toBe('/sys/fs/bpf');
    expect(mountOf('bpffs')?.['mountPath']).toBe('/sys/fs/bpf');
    expect(loadDeployConfig().switchyard.bpf.pinPath.startsWith('/sys/fs/bpf/')).toBe(true);
    expect(hostPath('cgroup')).toBe('/sys/fs/cgroup');
    expect(mountOf('cgroup')).toBeDefined();
  });
});

function loadDeployConfig() {
  const dir = mkdtempSync(join(tmpdir(), 'sy-deploy-'));
  try {
    const file = join(dir, 'config.conf');
    writeFileSync(file, cm.data['config.conf'] ?? '');
    return loadConfig([`--config=${file}`]).config;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the ConfigMap', () => {
  test('config.conf loads as `switchyard run --config` reads it, with the common CNIs’ pod interfaces', () => {
    const cfg = loadDeployConfig();
    expect([...cfg.switchyard.bpf.podInterfaces]).toEqual(['veth*', 'cali*', 'lxc*', 'cni*', 'gke*', 'eni*', 'azv*']);
    // The kubeconfig it names is the ConfigMap's other key, where the DaemonSet mounts it.
    const mount = (daemon['volumeMounts'] as Obj[]).find((m) => m['name'] === 'config');
    expect(cfg.clientConnection.kubeconfig).toBe(`${String(mount?.['mountPath'])}/kubeconfig.conf`);
    expect(daemon['args']).toContain(`--config=${String(mount?.['mountPath'])}/config.conf`);
  });

  test("kubeconfig.conf names the control plane, not the kubernetes Service, with the pod's service account", () => {
    const kc = parse(cm.data['kubeconfig.conf'] ?? '') as {
      clusters: { cluster: { server: string; 'certificate-authority': string } }[];
      users: { user: Obj }[];
    };
    const server = kc.clusters[0]?.cluster.server ?? '';
    expect(new URL(server).protocol).toBe('https:');
    expect(server).not.toMatch(/kubernetes\.default|10\.96\.0\.1|KUBERNETES_SERVICE/);
    expect(kc.clusters[0]?.cluster['certificate-authority']).toBe('/var/run/secrets/kubernetes.io/serviceaccount/ca.crt');
    expect(kc.users[0]?.user['tokenFile']).toBe('/var/run/secrets/kubernetes.io/serviceaccount/token');
  });
});

describe('RBAC', () => {
  const role = ALL.find((a) => a.doc['kind'] === 'ClusterRole')?.doc as { rules: { apiGroups: string[]; resources: string[]; verbs: string[] }[] };
  const allows = (group: string, resource: string, verb: string) =>
    role.rules.some((r) => r.apiGroups.includes(group) && r.resources.includes(resource) && r.verbs.includes(verb));

  test("kube-proxy's read rights and Events in both groups, bound to the DaemonSet's service account", () => {
    for (const verb of ['list', 'watch']) {
      expect(allows('', 'services', verb)).toBe(true);
      expect(allows('', 'nodes', verb)).toBe(true);
      expect(allows('discovery.k8s.io', 'endpointslices', verb)).toBe(true);
    }
    expect(allows('events.k8s.io', 'events', 'create')).toBe(true);
    expect(allows('', 'events', 'create')).toBe(true);
    const binding = ALL.find((a) => a.doc['kind'] === 'ClusterRoleBinding')?.doc as { subjects: Obj[] };
    expect(binding.subjects).toContainEqual({ kind: 'ServiceAccount', name: pod.serviceAccountName, namespace: 'kube-system' });
  });
});
