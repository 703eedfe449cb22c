"""The Python `kubernetes` package (PyPI, a real client nobody here wrote) against
skiff-apiserver: typed create/read/list/patch/replace/delete, label selectors, pagination,
watch, the status and scale subresources, and error statuses.

Usage: k8s_client.py URL [URL ...]   (apiserver replicas; requests alternate between them)
"""
import sys
import threading
import time

from kubernetes import client, watch
from kubernetes.client.rest import ApiException


def check(cond, what):
    if not cond:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok   {what}")


def api_client(url):
    cfg = client.Configuration()
    cfg.host = url
    return client.ApiClient(cfg)


def main():
    urls = sys.argv[1:]
    clients = [api_client(u) for u in urls]
    core = [client.CoreV1Api(c) for c in clients]
    apps = [client.AppsV1Api(c) for c in clients]
    version = client.VersionApi(clients[0]).get_code()
    check(version.major == "1", f"version {version.git_version}")

    ns = "pyk8s"
    core[0].create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=ns)))
    names = [n.metadata.name for n in core[1].list_namespace().items]
    check(ns in names and "default" in names, "namespace created and listed through the other replica")

    # ConfigMaps: create, read, list with a selector, paginate.
    for i in range(5):
        core[i % 2].create_namespaced_config_map(ns, client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=f"cm{i}", labels={"idx": str(i), "group": "a" if i < 3 else "b"}),
            data={"i": str(i)}))
    cm = core[1].read_namespaced_config_map("cm2", ns)
    check(cm.data == {"i": "2"} and cm.metadata.uid and cm.metadata.resource_version, "read back with uid and resourceVersion")
    sel = core[0].list_namespaced_config_map(ns, label_selector="group=a")
    check(sorted(c.metadata.name for c in sel.items) == ["cm0", "cm1", "cm2"], "label selector")
    page1 = core[0].list_namespaced_config_map(ns, limit=2)
    check(len(page1.items) == 2 and page1.metadata._continue, "limit returns a continue token")
    seen = [c.metadata.name for c in page1.items]
    token = page1.metadata._continue
    while token:
        page = core[1].list_namespaced_config_map(ns, limit=2, _continue=token)
        seen += [c.metadata.name for c in page.items]
        token = page.metadata._continue
    check(sorted(seen) == [f"cm{i}" for i in range(5)], "pagination visits every object once")

    # Optimistic concurrency: a stale replace is a 409 Conflict.
    cm = core[0].read_namespaced_config_map("cm0", ns)
    cm.data = {"i": "changed"}
    core[1].replace_namespaced_config_map("cm0", ns, cm)
    cm.data = {"i": "stale"}
    try:
        core[0].replace_namespaced_config_map("cm0", ns, cm)
        check(False, "stale replace refused")
    except ApiException as e:
        check(e.status == 409 and "Conflict" in e.body, "stale replace is 409 Conflict")

    # Patch (the client sends strategic merge patch for dicts).
    core[0].patch_namespaced_config_map("cm1", ns, {"metadata": {"labels": {"patched": "yes"}}})
    check(core[1].read_namespaced_config_map("cm1", ns).metadata.labels.get("patched") == "yes", "patch")

    # Watch: events from a resourceVersion, across replicas.
    rv = core[0].list_namespaced_config_map(ns).metadata.resource_version
    events = []

    def watcher():
        w = watch.Watch()
        for ev in w.stream(core[0].list_namespaced_config_map, ns, resource_version=rv, timeout_seconds=10):
            events.append((ev["type"], ev["object"].metadata.name))
            if len(events) == 3:
                w.stop()

    t = threading.Thread(target=watcher)
    t.start()
    time.sleep(0.5)
    core[1].create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="w1"), data={"a": "1"}))
    core[1].patch_namespaced_config_map("w1", ns, {"data": {"a": "2"}})
    core[1].delete_namespaced_config_map("w1", ns)
    t.join(15)
    check(events == [("ADDED", "w1"), ("MODIFIED", "w1"), ("DELETED", "w1")], f"watch events {events}")

    # Deployments: defaults, status subresource, scale subresource.
    dep = client.V1Deployment(
        metadata=client.V1ObjectMeta(name="web"),
        spec=client.V1DeploymentSpec(
            replicas=2,
            selector=client.V1LabelSelector(match_labels={"app": "web"}),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels={"app": "web"}),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="nginx:1.25")]))))
    created = apps[0].create_namespaced_deployment(ns, dep)
    check(created.spec.strategy.type == "RollingUpdate" and created.metadata.generation == 1, "deployment defaults")
    apps[1].patch_namespaced_deployment_status("web", ns, {"status": {"replicas": 2, "readyReplicas": 1}})
    d = apps[0].read_namespaced_deployment("web", ns)
    check(d.status.ready_replicas == 1 and d.metadata.generation == 1, "status subresource leaves generation alone")
    apps[1].patch_namespaced_deployment_scale("web", ns, {"spec": {"replicas": 4}})
    s = apps[0].read_namespaced_deployment_scale("web", ns)
    check(s.spec.replicas == 4 and s.status.selector == "app=web", "scale subresource")
    check(apps[0].read_namespaced_deployment("web", ns).metadata.generation == 2, "scaling bumps generation")

    # Binding a pod to a node sets spec.nodeName once.
    pod = client.V1Pod(metadata=client.V1ObjectMeta(name="p1"),
                       spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")]))
    core[0].create_namespaced_pod(ns, pod)
    binding = client.V1Binding(metadata=client.V1ObjectMeta(name="p1"),
                               target=client.V1ObjectReference(kind="Node", name="node-1"))
    core[1].create_namespaced_pod_binding("p1", ns, binding, _preload_content=False)
    check(core[0].read_namespaced_pod("p1", ns).spec.node_name == "node-1", "pods/binding sets nodeName")
    try:
        core[0].create_namespaced_pod_binding("p1", ns, binding, _preload_content=False)
        check(False, "second binding refused")
    except ApiException as e:
        check(e.status == 409, "a bound pod cannot be bound again (409)")

    # Errors.
    try:
        core[0].read_namespaced_config_map("missing", ns)
        check(False, "404")
    except ApiException as e:
        check(e.status == 404, "missing object is 404")
    try:
        core[0].create_namespaced_config_map(ns, client.V1ConfigMap(metadata=client.V1ObjectMeta(name="Bad_Name")))
        check(False, "422")
    except ApiException as e:
        check(e.status == 422 and "Invalid" in e.body, "invalid name is 422 Invalid")
    try:
        core[0].create_namespaced_config_map("no-such-ns", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="x")))
        check(False, "404 namespace")
    except ApiException as e:
        check(e.status == 404, "create in a missing namespace is 404")

    core[1].delete_namespace(ns)
    print("all kubernetes-client checks passed")


if __name__ == "__main__":
    main()
