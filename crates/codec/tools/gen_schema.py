#!/usr/bin/env python3
"""Generates crates/codec/src/schema.rs from the Kubernetes API `generated.proto` files.

Usage: gen_schema.py PROTO_ROOT > src/schema.rs

PROTO_ROOT holds `api/{core,apps}/v1/generated.proto` and
`apimachinery/pkg/{apis/meta/v1,util/intstr,api/resource,runtime}/generated.proto` of one
Kubernetes release (here v1.33), with proto packages named after their path (`api.apps.v1`,
`apimachinery.pkg.apis.meta.v1`, ...), as in the copies bundled by the `k8s-rs-pb` crate
(`src/v1_33/`). Only the messages reachable from ROOTS are emitted; each
field keeps the proto name (which is the JSON name), number, type and cardinality. Fields
listed in KEEP_ZERO are Go pointers: a zero value on the wire is meaningful and is rendered.
"""
import re
import sys
from pathlib import Path

FILES = [
    "apimachinery/pkg/apis/meta/v1/generated.proto",
    "apimachinery/pkg/util/intstr/generated.proto",
    "apimachinery/pkg/api/resource/generated.proto",
    "apimachinery/pkg/runtime/generated.proto",
    "api/core/v1/generated.proto",
    "api/apps/v1/generated.proto",
]
ROOTS = [
    "api.apps.v1.Deployment",
    "api.apps.v1.ReplicaSet",
    "api.core.v1.Pod",
    "api.core.v1.Namespace",
    "api.core.v1.Service",
    "api.core.v1.ConfigMap",
    "api.core.v1.Secret",
]
SPECIAL = {
    "apimachinery.pkg.util.intstr.IntOrString": "Ty::IntOrString",
    "apimachinery.pkg.api.resource.Quantity": "Ty::Quantity",
    "apimachinery.pkg.apis.meta.v1.Time": "Ty::Time",
    "apimachinery.pkg.apis.meta.v1.FieldsV1": "Ty::RawJson",
    "apimachinery.pkg.runtime.RawExtension": "Ty::RawJson",
}
SCALARS = {
    "string": "Ty::Str",
    "bytes": "Ty::Bytes",
    "int32": "Ty::I32",
    "int64": "Ty::I64",
    "bool": "Ty::Bool",
}
# Go pointer fields (`*int32`, `*bool`, `*string`, `*IntOrString`, ...): zero is a value.
KEEP_ZERO = {
    "DeploymentSpec.replicas", "DeploymentSpec.revisionHistoryLimit",
    "DeploymentSpec.progressDeadlineSeconds", "DeploymentStatus.collisionCount",
    "DeploymentStatus.terminatingReplicas",
    "RollingUpdateDeployment.maxUnavailable", "RollingUpdateDeployment.maxSurge",
    "ReplicaSetSpec.replicas", "ReplicaSetStatus.terminatingReplicas",
    "ObjectMeta.deletionGracePeriodSeconds",
    "OwnerReference.controller", "OwnerReference.blockOwnerDeletion",
    "ConfigMap.immutable", "Secret.immutable",
    "PodSpec.terminationGracePeriodSeconds", "PodSpec.activeDeadlineSeconds",
    "PodSpec.automountServiceAccountToken", "PodSpec.shareProcessNamespace",
    "PodSpec.priority", "PodSpec.enableServiceLinks", "PodSpec.preemptionPolicy",
    "PodSpec.setHostnameAsFQDN", "PodSpec.hostUsers", "PodSpec.runtimeClassName",
    "Container.restartPolicy", "EphemeralContainerCommon.restartPolicy",
    "SecurityContext.privileged", "SecurityContext.runAsUser", "SecurityContext.runAsGroup",
    "SecurityContext.runAsNonRoot", "SecurityContext.readOnlyRootFilesystem",
    "SecurityContext.allowPrivilegeEscalation", "SecurityContext.procMount",
    "PodSecurityContext.runAsUser", "PodSecurityContext.runAsGroup",
    "PodSecurityContext.runAsNonRoot", "PodSecurityContext.fsGroup",
    "PodSecurityContext.fsGroupChangePolicy", "PodSecurityContext.supplementalGroupsPolicy",
    "PodSecurityContext.seLinuxChangePolicy",
    "WindowsSecurityContextOptions.gmsaCredentialSpecName",
    "WindowsSecurityContextOptions.gmsaCredentialSpec",
    "WindowsSecurityContextOptions.runAsUserName", "WindowsSecurityContextOptions.hostProcess",
    "SeccompProfile.localhostProfile", "AppArmorProfile.localhostProfile",
    "Probe.terminationGracePeriodSeconds", "GRPCAction.service",
    "SecretVolumeSource.defaultMode", "SecretVolumeSource.optional",
    "ConfigMapVolumeSource.defaultMode", "ConfigMapVolumeSource.optional",
    "ProjectedVolumeSource.defaultMode", "DownwardAPIVolumeSource.defaultMode",
    "KeyToPath.mode", "DownwardAPIVolumeFile.mode", "SecretProjection.optional",
    "ConfigMapProjection.optional", "ConfigMapKeySelector.optional",
    "SecretKeySelector.optional", "ConfigMapEnvSource.optional", "SecretEnvSource.optional",
    "ServiceAccountTokenProjection.expirationSeconds", "CSIVolumeSource.readOnly",
    "CSIVolumeSource.fsType", "HostPathVolumeSource.type",
    "PersistentVolumeClaimSpec.storageClassName", "PersistentVolumeClaimSpec.volumeMode",
    "PersistentVolumeClaimSpec.volumeAttributesClassName",
    "AzureDiskVolumeSource.cachingMode", "AzureDiskVolumeSource.fsType",
    "AzureDiskVolumeSource.readOnly", "AzureDiskVolumeSource.kind",
    "ISCSIVolumeSource.initiatorName", "ClusterTrustBundleProjection.name",
    "ClusterTrustBundleProjection.signerName", "ClusterTrustBundleProjection.optional",
    "Toleration.tolerationSeconds", "TopologySpreadConstraint.minDomains",
    "TopologySpreadConstraint.nodeAffinityPolicy", "TopologySpreadConstraint.nodeTaintsPolicy",
    "PodResourceClaim.resourceClaimName", "PodResourceClaim.resourceClaimTemplateName",
    "PodResourceClaimStatus.resourceClaimName",
    "ServiceSpec.allocateLoadBalancerNodePorts", "ServiceSpec.ipFamilyPolicy",
    "ServiceSpec.loadBalancerClass", "ServiceSpec.internalTrafficPolicy",
    "ServiceSpec.trafficDistribution", "ClientIPConfig.timeoutSeconds",
    "ServicePort.appProtocol", "LoadBalancerIngress.ipMode",
    "ContainerStatus.started", "ContainerStatus.stopSignal",
    "ContainerStateTerminated.exitCode", "ContainerStatus.ready",
    "ContainerStatus.restartCount", "Lifecycle.stopSignal",
    "TypedLocalObjectReference.apiGroup", "TypedObjectReference.apiGroup",
    "TypedObjectReference.namespace", "EmptyDirVolumeSource.sizeLimit",
    "ContainerPort.containerPort", "ServicePort.port",
}
# Go structs embedded with `json:",inline"`: their fields appear in the parent object.
INLINE = {
    "Volume.volumeSource", "Probe.handler", "EphemeralContainer.ephemeralContainerCommon",
}
DECL = re.compile(r"^\s*(optional|repeated)\s+(\S+)\s+(\w+)\s*=\s*(\d+)\s*;")
MAPDECL = re.compile(r"^\s*map<\s*(\S+)\s*,\s*(\S+)\s*>\s+(\w+)\s*=\s*(\d+)\s*;")


def parse(root):
    messages = {}
    for rel in FILES:
        pkg = None
        cur = None
        for line in (Path(root) / rel).read_text().splitlines():
            line = line.split("//")[0]
            if m := re.match(r"^package\s+([\w.]+);", line):
                pkg = m.group(1)
            elif m := re.match(r"^message\s+(\w+)\s*\{", line):
                cur = f"{pkg}.{m.group(1)}"
                messages[cur] = {"pkg": pkg, "fields": []}
            elif re.match(r"^\}", line):
                cur = None
            elif cur and (m := DECL.match(line)):
                card, ty, name, num = m.groups()
                messages[cur]["fields"].append((int(num), name, ty, card, None))
            elif cur and (m := MAPDECL.match(line)):
                kty, vty, name, num = m.groups()
                assert kty == "string", (cur, name)
                messages[cur]["fields"].append((int(num), name, vty, "map", None))
            elif cur and line.strip() and not line.strip().startswith(("option", "reserved")):
                raise SystemExit(f"unparsed line in {cur}: {line!r}")
    return messages


def resolve(messages, pkg, ty):
    if ty in SCALARS:
        return ty
    full = ty[1:] if ty.startswith(".") else f"{pkg}.{ty}"
    assert full in messages, (pkg, ty)
    return full


def ident(full):
    return re.sub(r"[^A-Za-z0-9]", "_", full.replace("apimachinery.pkg.", "").replace("api.", "")).upper()


def main():
    messages = parse(sys.argv[1])
    seen, order, todo = set(), [], list(ROOTS)
    while todo:
        name = todo.pop(0)
        if name in seen or name in SPECIAL:
            continue
        seen.add(name)
        order.append(name)
        msg = messages[name]
        for (_, _, ty, _, _) in msg["fields"]:
            r = resolve(messages, msg["pkg"], ty)
            if r not in SCALARS and r not in SPECIAL:
                todo.append(r)
    out = [
        "//! Field tables for the Kubernetes v1.33 protobuf messages reachable from the kinds this",
        "//! crate decodes. Generated by `tools/gen_schema.py` from the API's `generated.proto`",
        "//! definitions (field names there are the JSON names). Do not edit by hand.",
        "",
        "use crate::schema_types::{Card, Msg, Ty, f};",
        "",
    ]
    used_keep = set()
    for name in sorted(order):
        msg = messages[name]
        short = name.rsplit(".", 1)[1]
        out.append(f"pub(crate) static {ident(name)}: Msg = Msg {{")
        out.append(f"    name: \"{short}\",")
        out.append("    fields: &[")
        for (num, fname, ty, card, _) in msg["fields"]:
            r = resolve(messages, msg["pkg"], ty)
            rty = SCALARS.get(r) or SPECIAL.get(r) or f"Ty::Msg(&{ident(r)})"
            key = f"{short}.{fname}"
            if card == "repeated":
                c = "Card::Rep"
            elif card == "map":
                c = "Card::Map"
            elif key in INLINE or fname == "localObjectReference":
                c = "Card::Inline"
            elif key in KEEP_ZERO:
                c = "Card::Keep"
                used_keep.add(key)
            else:
                c = "Card::One"
            out.append(f"        f({num}, \"{fname}\", {rty}, {c}),")
        out.append("    ],")
        out.append("};")
        out.append("")
    unused = sorted(KEEP_ZERO - used_keep)
    if unused:
        print(f"note: KEEP_ZERO entries not in closure: {unused}", file=sys.stderr)
    print(f"note: {len(order)} messages", file=sys.stderr)
    sys.stdout.write("\n".join(out) + "\n")


main()
