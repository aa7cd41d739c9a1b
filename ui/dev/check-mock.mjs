// check-mock.mjs — runs dev/mock-tauri.js under Node and checks every
// answer it gives (and every berth://changed payload) against ui/schema.json,
// the shapes generated from the engine's types. Objects are closed: a field
// the types do not have is an error, as is one they require and the mock
// lacks. Run by berth-core's test `the_window_mock_answers_in_the_schema`;
// by hand: `node ui/dev/check-mock.mjs`. Prints "checked N answers" or the
// first mismatches, one per line, and exits 1.

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const schema = JSON.parse(readFileSync(join(here, "..", "schema.json"), "utf8"));

/** The errors of `v` against `s`, each "path: what". */
function check(v, s, path, errors) {
  if (s === true || s === undefined) return errors;
  if (s.$ref) {
    const name = s.$ref.replace(/^#\/\$defs\//, "");
    const def = schema.$defs[name];
    if (!def) return [...errors, `${path}: unknown $ref ${s.$ref}`];
    return check(v, def, path, errors);
  }
  if (s.oneOf || s.anyOf) {
    const alts = s.oneOf || s.anyOf;
    const fits = alts.filter((a) => check(v, a, path, []).length === 0).length;
    if (s.oneOf ? fits !== 1 : fits < 1) {
      const why = alts.map((a) => check(v, a, path, [])[0]).join(" | ");
      errors.push(`${path}: ${JSON.stringify(v)} fits ${fits} of ${alts.length} alternatives (${why})`);
    }
    if (!s.type && !s.properties) return errors;
  }
  if ("const" in s && v !== s.const) errors.push(`${path}: ${JSON.stringify(v)} is not ${JSON.stringify(s.const)}`);
  if (s.enum && !s.enum.includes(v)) errors.push(`${path}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (s.type) {
    const types = Array.isArray(s.type) ? s.type : [s.type];
    const is = (t) => t === "null" ? v === null
      : t === "array" ? Array.isArray(v)
      : t === "object" ? v !== null && typeof v === "object" && !Array.isArray(v)
      : t === "integer" ? Number.isInteger(v)
      : t === "number" ? typeof v === "number"
      : typeof v === t;
    if (!types.some(is)) return [...errors, `${path}: ${JSON.stringify(v)} is not ${types.join(" or ")}`];
  }
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) errors.push(`${path}: ${v} < ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) errors.push(`${path}: ${v} > ${s.maximum}`);
  }
  if (Array.isArray(v) && s.items) v.forEach((x, i) => check(x, s.items, `${path}[${i}]`, errors));
  if (v !== null && typeof v === "object" && !Array.isArray(v) && s.properties) {
    for (const k of s.required || []) if (!(k in v)) errors.push(`${path}: field ${k} is missing`);
    for (const [k, x] of Object.entries(v)) {
      if (!(k in s.properties)) errors.push(`${path}: field ${k} is not in the types`);
      else check(x, s.properties[k], `${path}.${k}`, errors);
    }
  }
  return errors;
}

// the browser globals the mock uses
globalThis.window = {};
globalThis.location = { search: "?mock" };
await import(join(here, "mock-tauri.js"));
const tauri = window.__TAURI__;

let answers = 0;
const errors = [];
const expect = (what, value, shape) => {
  answers += 1;
  errors.push(...check(value, schema.shapes[shape], what, []));
};
const arrayOf = (shape) => ({ type: "array", items: schema.shapes[shape] });

const changed = [];
await tauri.event.listen("berth://changed", (e) => changed.push(e.payload));
const remotes = await tauri.core.invoke("list_remotes");
errors.push(...check(remotes, arrayOf("RemoteView"), "list_remotes", []));
answers += 1;
expect("get_settings", await tauri.core.invoke("get_settings"), "SettingsView");
for (const k of await tauri.core.invoke("list_keys")) expect("list_keys[]", k, "KeyInfo");
for (const r of remotes) {
  if (r.state === "connected") expect(`containers(${r.name})`, await tauri.core.invoke("containers", { name: r.name }), "Containers");
  const { state, error, endpoint, docker_version, default_context, ...remote } = r;
  for (const step of await tauri.core.invoke("test_connection", { remote })) expect(`test_connection(${r.name})[]`, step, "Step");
}
// a first sync that finishes, and a connect that changes the state
for (let i = 0; i < 16; i++) expect("containers(build-box) later", await tauri.core.invoke("containers", { name: "build-box" }), "Containers");
await tauri.core.invoke("disconnect", { name: "build-box" });
await new Promise((r) => setTimeout(r, 10));
for (const payload of changed) {
  answers += 1;
  errors.push(...check(payload, arrayOf("RemoteView"), "berth://changed", []));
}

if (errors.length) {
  console.error([...new Set(errors)].slice(0, 20).join("\n"));
  process.exit(1);
}
console.log(`mock: checked ${answers} answers against ui/schema.json`);
