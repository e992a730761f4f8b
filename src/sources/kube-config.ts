// Where the Kubernetes API source connects, decided from kube-proxy's flags
// the way kube-proxy's createClient does:
// - --kubeconfig FILE: that file's current context; --master, when also
//   given, overrides its cluster's server URL (clientcmd ConfigOverrides);
// - --master URL alone: that server with no credentials;
// - neither: the pod's service account (rest.InClusterConfig): the
//   KUBERNETES_SERVICE_HOST/PORT environment, the token and CA under
//   /var/run/secrets/kubernetes.io/serviceaccount (the client re-reads the
//   token file, so projected token rotation works).
// Reading the file is I/O: call this from start(), not from a constructor.

import { KubeConfig, type Cluster } from '@kubernetes/client-node';
import { SwitchyardError } from '../util/errors.ts';

export interface KubeConfigOptions {
  /** --kubeconfig: a kubeconfig file; its current context is used. */
  readonly kubeconfigPath?: string;
  /** --master: the API server URL; overrides the kubeconfig's server, or is used alone without credentials. */
  readonly master?: string;
  /** Use the pod's service account. The default when neither kubeconfigPath nor master is given; false makes that an error. */
  readonly inCluster?: boolean;
}

/** The API server connection cannot be configured; `field` names the flag at fault. */
export class KubeConfigError extends SwitchyardError {
  declare readonly code: 'ERR_SY_INVALID_KUBECONFIG';
  readonly field: string;

  constructor(field: string, message: string, options?: ErrorOptions) {
    super('ERR_SY_INVALID_KUBECONFIG', `${field}: ${message}`, options);
    this.field = field;
  }
}

export function loadKubeConfig(options: KubeConfigOptions): KubeConfig {
  const kc = new KubeConfig();
  if (options.master !== undefined) checkServerUrl(options.master, '--master');
  if (options.kubeconfigPath) {
    try {
      kc.loadFromFile(options.kubeconfigPath);
    } catch (err) {
      throw new KubeConfigError('--kubeconfig', `cannot load ${options.kubeconfigPath}: ${(err as Error).message}`, { cause: err });
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new KubeConfigError('--kubeconfig', `${options.kubeconfigPath}: the current context names no cluster`);
    if (options.master) overrideServer(kc, cluster, options.master);
    else if (isPlainHttp(cluster.server) && !cluster.skipTLSVerify) overrideServer(kc, cluster, cluster.server);
    checkServerUrl(kc.getCurrentCluster()!.server, '--kubeconfig');
    return kc;
  }
  if (options.master) {
    kc.loadFromClusterAndUser({ name: 'master', server: options.master, skipTLSVerify: isPlainHttp(options.master) }, { name: 'anonymous' });
    return kc;
  }
  if (options.inCluster === false) {
    throw new KubeConfigError('--kubeconfig', 'no API server configured: give --kubeconfig or --master');
  }
  // KubeConfig.loadFromCluster reads these from process.env.
  if (!process.env['KUBERNETES_SERVICE_HOST'] || !process.env['KUBERNETES_SERVICE_PORT']) {
    throw new KubeConfigError(
      '--kubeconfig',
      'neither --kubeconfig nor --master given, and not running in a pod (KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT unset)',
    );
  }
  kc.loadFromCluster();
  return kc;
}

/** The server URL of the current context, for logs. */
export function serverOf(kc: KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? '(none)';
}

function overrideServer(kc: KubeConfig, current: Cluster, server: string): void {
  // The client refuses http:// unless skipTLSVerify is set; there is no TLS to verify then.
  const replaced: Cluster = { ...current, server, skipTLSVerify: current.skipTLSVerify || isPlainHttp(server) };
  kc.loadFromOptions({
    clusters: kc.clusters.map((c) => (c.name === current.name ? replaced : c)),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.currentContext,
  });
}

function checkServerUrl(server: string, field: string): void {
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeConfigError(field, `server ${JSON.stringify(server)} is not a URL`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new KubeConfigError(field, `server ${JSON.stringify(server)} must be an http:// or https:// URL`);
  }
}

function isPlainHttp(server: string): boolean {
  return server.startsWith('http:');
}
