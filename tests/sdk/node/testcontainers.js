// Testcontainers for Node as its users write it: a web server on an exposed
// port (Testcontainers asks the daemon for HostPort "0"), an exec, and a bind
// mount of a local folder. Driven by tests/fidelity.rs with DOCKER_HOST set
// to Berth; prints one "tc-…" line per thing the test checks.
// Usage: node testcontainers.js IMAGE LOCAL_DIR
const { GenericContainer } = require("testcontainers");
const Docker = require("dockerode");
const http = require("http");

function get(host, port) {
  return new Promise((resolve, reject) => {
    http
      .get({ host, port, path: "/" }, (r) => {
        let body = "";
        r.on("data", (d) => (body += d));
        r.on("end", () => resolve(body));
      })
      .on("error", reject);
  });
}

(async () => {
  const [image, dir] = process.argv.slice(2);
  const c = await new GenericContainer(image)
    .withCommand(["sh", "-c", "exec httpd -f -p 80 -h /www"])
    .withExposedPorts(80)
    .withBindMounts([{ source: dir, target: "/data", mode: "rw" }])
    .start();
  console.log("tc-page:", (await get(c.getHost(), c.getMappedPort(80))).trim());
  const ex = await c.exec(["cat", "/data/hello.txt"]);
  console.log("tc-exec:", ex.output.trim(), "exit", ex.exitCode);
  const info = await new Docker().getContainer(c.getId()).inspect();
  const data = info.Mounts.find((m) => m.Destination === "/data");
  console.log("tc-mount:", data ? data.Source : "none");
  await c.stop();
  console.log("tc-done");
})().catch((e) => {
  console.error("tc-error:", e.message);
  process.exit(1);
});
