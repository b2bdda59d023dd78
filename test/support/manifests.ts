// Manifest text the daemon tests write into a --manifests directory: one Service lab/web
// (ClusterIP 10.96.0.10, TCP 80 -> 8080 and UDP 53 -> 5353) and its EndpointSlice.
export const webManifest = (eps: readonly string[]): string => `apiVersion: v1
kind: Service
metadata: { name: web, namespace: lab }
spec: { clusterIP: 10.96.0.10, ports: [{ name: http, port: 80, targetPort: 8080 }, { name: dns, port: 53, targetPort: 5353, protocol: UDP }] }
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata: { name: web-1, namespace: lab, labels: { kubernetes.io/service-name: web } }
addressType: IPv4
ports: [{ name: http, port: 8080 }, { name: dns, port: 5353, protocol: UDP }]
endpoints: [${eps.map((e) => `{ addresses: [${e}] }`).join(', ')}]
`;
