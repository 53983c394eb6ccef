// Pod Security Standards, "restricted" profile (which includes "baseline"), as a pure evaluator for
// tests. Follows https://kubernetes.io/docs/concepts/security/pod-security-standards/ (policy version
// latest, Kubernetes 1.31+), Linux pods. It checks the pod spec as the PodSecurity admission plugin
// does, field by field; each failure names the check as the document titles it. Deliberate limits:
// no per-version differences (it applies the latest rules), no Windows-pod exemptions.

type Obj = Record<string, unknown>;

const BASELINE_CAPS = new Set([
  'AUDIT_WRITE', 'CHOWN', 'DAC_OVERRIDE', 'FOWNER', 'FSETID', 'KILL', 'MKNOD', 'NET_BIND_SERVICE',
  'SETFCAP', 'SETGID', 'SETPCAP', 'SETUID', 'SYS_CHROOT',
]);
const SAFE_SYSCTLS = new Set([
  'kernel.shm_rmid_forced', 'net.ipv4.ip_local_port_range', 'net.ipv4.ip_unprivileged_port_start',
  'net.ipv4.tcp_syncookies', 'net.ipv4.ping_group_range', 'net.ipv4.ip_local_reserved_ports',
  'net.ipv4.tcp_keepalive_time', 'net.ipv4.tcp_fin_timeout', 'net.ipv4.tcp_keepalive_intvl',
  'net.ipv4.tcp_keepalive_probes',
]);
const SELINUX_TYPES = new Set(['', 'container_t', 'container_init_t', 'container_kvm_t', 'container_engine_t']);
const RESTRICTED_VOLUMES = ['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret'];

const obj = (v: unknown): Obj => (v !== null && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): Obj[] => (Array.isArray(v) ? v.map(obj) : []);

/** Every violation of the restricted profile, as "check: detail"; empty means the pod passes. */
export function restrictedViolations(pod: unknown): string[] {
  const p = obj(pod);
  const meta = obj(p.metadata);
  const spec = obj(p.spec);
  const podSC = obj(spec.securityContext);
  const containers = [...list(spec.initContainers), ...list(spec.containers), ...list(spec.ephemeralContainers)];
  const out: string[] = [];
  const each = (check: string, bad: (c: Obj, sc: Obj) => string | undefined) => {
    for (const c of containers) {
      const why = bad(c, obj(c.securityContext));
      if (why !== undefined) out.push(`${check}: container ${String(c.name)} ${why}`);
    }
  };

  // --- baseline ---
  if (obj(podSC.windowsOptions).hostProcess === true) out.push('HostProcess: pod sets windowsOptions.hostProcess');
  each('HostProcess', (_c, sc) => (obj(sc.windowsOptions).hostProcess === true ? 'sets hostProcess' : undefined));
  for (const f of ['hostNetwork', 'hostPID', 'hostIPC']) if (spec[f] === true) out.push(`Host Namespaces: ${f}=true`);
  each('Privileged Containers', (_c, sc) => (sc.privileged === true ? 'is privileged' : undefined));
  each('Capabilities', (_c, sc) => {
    const add = (obj(sc.capabilities).add as unknown[] | undefined) ?? [];
    const extra = add.filter((a) => !BASELINE_CAPS.has(String(a)));
    return extra.length > 0 ? `adds ${extra.join(',')}` : undefined;
  });
  for (const v of list(spec.volumes)) if ('hostPath' in v) out.push(`HostPath Volumes: volume ${String(v.name)}`);
  each('Host Ports', (c) => {
    const used = list(c.ports).filter((port) => port.hostPort !== undefined && port.hostPort !== 0);
    return used.length > 0 ? `uses hostPort ${used.map((u) => String(u.hostPort)).join(',')}` : undefined;
  });
  const apparmorOk = (t: unknown) => t === undefined || t === 'RuntimeDefault' || t === 'Localhost';
  if (!apparmorOk(obj(podSC.appArmorProfile).type)) out.push('AppArmor: pod appArmorProfile is not RuntimeDefault/Localhost');
  each('AppArmor', (_c, sc) => (apparmorOk(obj(sc.appArmorProfile).type) ? undefined : 'appArmorProfile is not RuntimeDefault/Localhost'));
  for (const [k, v] of Object.entries(obj(meta.annotations))) {
    if (k.startsWith('container.apparmor.security.beta.kubernetes.io/') && v !== 'runtime/default' && !String(v).startsWith('localhost/')) {
      out.push(`AppArmor: annotation ${k}=${String(v)}`);
    }
  }
  const selinuxBad = (o: Obj) =>
    (o.type !== undefined && !(typeof o.type === 'string' && SELINUX_TYPES.has(o.type))) || (o.user ?? '') !== '' || (o.role ?? '') !== '';
  if (selinuxBad(obj(podSC.seLinuxOptions))) out.push('SELinux: pod seLinuxOptions');
  each('SELinux', (_c, sc) => (selinuxBad(obj(sc.seLinuxOptions)) ? 'seLinuxOptions' : undefined));
  each('/proc Mount Type', (_c, sc) => (sc.procMount === undefined || sc.procMount === 'Default' ? undefined : `procMount ${JSON.stringify(sc.procMount)}`));
  if (obj(podSC.seccompProfile).type === 'Unconfined') out.push('Seccomp: pod seccompProfile Unconfined');
  for (const s of list(podSC.sysctls)) if (!SAFE_SYSCTLS.has(String(s.name))) out.push(`Sysctls: ${String(s.name)}`);

  // --- restricted ---
  for (const v of list(spec.volumes)) {
    const types = Object.keys(v).filter((k) => k !== 'name');
    if (!types.every((t) => RESTRICTED_VOLUMES.includes(t))) out.push(`Volume Types: volume ${String(v.name)} is ${types.join(',')}`);
  }
  each('Privilege Escalation', (_c, sc) => (sc.allowPrivilegeEscalation === false ? undefined : 'does not set allowPrivilegeEscalation=false'));
  each('Running as Non-root', (_c, sc) => {
    if (sc.runAsNonRoot === false) return 'sets runAsNonRoot=false';
    return sc.runAsNonRoot === true || podSC.runAsNonRoot === true ? undefined : 'runAsNonRoot is not true (pod or container)';
  });
  if (podSC.runAsUser === 0) out.push('Running as Non-root user: pod runAsUser=0');
  each('Running as Non-root user', (_c, sc) => (sc.runAsUser === 0 ? 'runAsUser=0' : undefined));
  const seccompOk = (t: unknown) => t === 'RuntimeDefault' || t === 'Localhost';
  const podSeccomp = obj(podSC.seccompProfile).type;
  each('Seccomp', (_c, sc) => {
    const t = obj(sc.seccompProfile).type;
    if (t !== undefined) return seccompOk(t) ? undefined : `seccompProfile ${JSON.stringify(t)}`;
    return seccompOk(podSeccomp) ? undefined : 'no RuntimeDefault/Localhost seccomp profile (pod or container)';
  });
  each('Capabilities', (_c, sc) => {
    const caps = obj(sc.capabilities);
    const drop = ((caps.drop as unknown[] | undefined) ?? []).map(String);
    const add = ((caps.add as unknown[] | undefined) ?? []).map(String);
    if (!drop.includes('ALL')) return 'does not drop ALL';
    const extra = add.filter((a) => a !== 'NET_BIND_SERVICE');
    return extra.length > 0 ? `adds ${extra.join(',')} (restricted allows only NET_BIND_SERVICE)` : undefined;
  });
  return out;
}
