// validate.mjs - offline validation of rendered Kubernetes manifests.
//
//   node validate.mjs RENDERED.yaml CRD_DIR   (CRD_DIR "-": custom resources
//                                              are listed as not validated)
//
// Built-in kinds: kubernetes-models' schema validation (types, required
// fields, enums), then TypeScript's excess-property check against the same
// models' interfaces, which rejects any field Kubernetes does not know (the
// schema validation lets unknown fields through). Custom resources: ajv
// against the openAPIV3Schema of their CRD (found in CRD_DIR), made strict
// the way the API server prunes: an object schema with properties and
// neither additionalProperties nor x-kubernetes-preserve-unknown-fields
// accepts no other field. Exit 1 with one line per problem.
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import { execFileSync } from "node:child_process";
import Ajv from "ajv";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const [renderedPath, crdDir] = process.argv.slice(2);
if (!renderedPath || !crdDir) {
  console.error("usage: node validate.mjs RENDERED.yaml CRD_DIR");
  process.exit(2);
}
const problems = [];
const docs = YAML.parseAllDocuments(fs.readFileSync(renderedPath, "utf8"))
  .map((d) => d.toJS())
  .filter((d) => d);

function name(doc) {
  return `${doc.kind}/${doc.metadata?.name ?? "?"}`;
}

// apiVersion -> the kubernetes-models module folder ("v1", "apps/v1", ...)
function modelPath(doc) {
  const [group, version] = doc.apiVersion.includes("/")
    ? doc.apiVersion.split("/")
    : ["", doc.apiVersion];
  return group ? `kubernetes-models/${group}/${version}/${doc.kind}` : `kubernetes-models/${version}/${doc.kind}`;
}

function crdSchemas(dir) {
  const schemas = new Map();
  for (const file of fs.readdirSync(dir, { recursive: true })) {
    if (!/\.ya?ml$/.test(file)) continue;
    for (const d of YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"))) {
      const crd = d.toJS();
      if (crd?.kind !== "CustomResourceDefinition") continue;
      for (const v of crd.spec.versions)
        schemas.set(`${crd.spec.group}/${v.name}/${crd.spec.names.kind}`, v.schema.openAPIV3Schema);
    }
  }
  return schemas;
}

function strict(schema) {
  if (Array.isArray(schema)) return schema.map(strict);
  if (!schema || typeof schema !== "object") return schema;
  const out = {};
  for (const [k, v] of Object.entries(schema)) out[k] = strict(v);
  if (out.properties && out.additionalProperties === undefined && !out["x-kubernetes-preserve-unknown-fields"])
    out.additionalProperties = false;
  return out;
}

const skipped = [];
function validateCustom(doc, schemas, ajv) {
  if (crdDir === "-") {
    skipped.push(name(doc));
    return;
  }
  const schema = schemas.get(`${doc.apiVersion}/${doc.kind}`);
  if (!schema) {
    problems.push(`${name(doc)}: no CRD for ${doc.apiVersion} ${doc.kind} in ${crdDir}`);
    return;
  }
  const check = ajv.compile(strict(schema));
  if (!check(doc))
    for (const e of check.errors)
      problems.push(`${name(doc)}: ${e.instancePath || "/"} ${e.message}${e.params?.additionalProperty ? ` (${e.params.additionalProperty})` : ""}`);
}

function validateBuiltin(doc, typed) {
  let Model;
  try {
    Model = require(modelPath(doc))[doc.kind];
  } catch {
    problems.push(`${name(doc)}: unknown built-in kind ${doc.apiVersion} ${doc.kind}`);
    return;
  }
  try {
    new Model(doc).validate();
  } catch (e) {
    problems.push(`${name(doc)}: ${e.message.split("\n").slice(0, 4).join("; ")}`);
  }
  typed.push({ doc, module: modelPath(doc), iface: `I${doc.kind}` });
}

// One TypeScript file typing every built-in object with its interface;
// tsc reports a field the interface lacks as TS2353/TS2561.
function checkUnknownFields(typed) {
  if (typed.length === 0) return;
  // Inside this package, so that the imports resolve to its node_modules.
  const dir = fs.mkdtempSync(path.join(path.dirname(new URL(import.meta.url).pathname), ".tsc-"));
  const lines = [];
  const where = [];
  typed.forEach((t, i) => {
    lines.push(`import type { ${t.iface} as T${i} } from "${t.module}";`);
  });
  typed.forEach((t, i) => {
    const json = JSON.stringify(t.doc, null, 1).split("\n");
    where.push({ from: lines.length + 1, to: lines.length + json.length, doc: t.doc });
    json[0] = `export const o${i}: T${i} = ${json[0]}`;
    json[json.length - 1] += ";";
    lines.push(...json);
  });
  const file = path.join(dir, "manifests.ts");
  fs.writeFileSync(file, lines.join("\n"));
  const tsc = path.join(path.dirname(require.resolve("typescript/package.json")), "bin", "tsc");
  try {
    execFileSync(process.execPath, [tsc, "--noEmit", "--strict", "--skipLibCheck", "--moduleResolution", "node",
      "--module", "commonjs", file], { encoding: "utf8", stdio: "pipe" });
  } catch (e) {
    for (const line of String(e.stdout).split("\n")) {
      const m = line.match(/manifests\.ts\((\d+),\d+\): error TS\d+: (.*)/);
      if (!m) continue;
      const at = where.find((w) => +m[1] >= w.from && +m[1] <= w.to);
      problems.push(`${at ? name(at.doc) : "?"}: ${m[2]}`);
    }
    if (!problems.length) problems.push(`tsc failed: ${e.stdout}${e.stderr}`);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const schemas = crdDir === "-" ? new Map() : crdSchemas(crdDir);
// CRD patterns are Go (RE2) syntax: "(?i)" becomes the i flag.
function goRegExp(source, flags) {
  const insensitive = source.includes("(?i)");
  return new RegExp(source.replaceAll("(?i)", ""), insensitive ? `${flags}i` : flags);
}
goRegExp.code = "goRegExp";
const ajv = new Ajv({ strict: false, allErrors: true, logger: false, code: { regExp: goRegExp } });
// Formats the API server knows; checked by it, not here.
for (const f of ["int32", "int64", "float", "double", "byte", "date-time", "duration", "uri", "quantity", "binary", "password"])
  ajv.addFormat(f, true);
const typed = [];
for (const doc of docs) {
  if (!doc.apiVersion || !doc.kind) {
    problems.push(`a document without apiVersion or kind`);
    continue;
  }
  const group = doc.apiVersion.includes("/") ? doc.apiVersion.split("/")[0] : "";
  const builtin = group === "" || !group.includes(".") || group.endsWith(".k8s.io");
  if (builtin) validateBuiltin(doc, typed);
  else validateCustom(doc, schemas, ajv);
}
checkUnknownFields(typed);
for (const p of problems) console.log(`k8s-validate: ${p}`);
if (skipped.length) console.log(`k8s-validate: NOT validated (no CRD folder): ${skipped.join(", ")}`);
console.log(`k8s-validate: ${docs.length} objects (${typed.length} built-in, ${docs.length - typed.length} custom), ${problems.length} problems`);
process.exit(problems.length ? 1 : 0);
