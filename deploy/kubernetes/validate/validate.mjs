// Validates Kubernetes manifests against the OpenAPI schemas that the
// kubernetes-models package bundles (types, enums, required fields, formats;
// unknown fields are NOT reported by these schemas). No cluster needed.
//   npm ci && node validate.mjs ../bwtracker.yaml
// Exit 0 when every document is valid, 1 otherwise; one line per document.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

let failed = 0;
let checked = 0;
for (const file of process.argv.slice(2)) {
  const docs = parseAllDocuments(readFileSync(file, "utf8"));
  for (const doc of docs) {
    if (doc.errors.length > 0) {
      console.log(`FAIL ${file}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      failed++;
      continue;
    }
    const obj = doc.toJS();
    if (obj == null) continue;
    const { apiVersion, kind } = obj;
    const name = `${file}: ${kind}/${obj.metadata?.name}`;
    if (typeof apiVersion !== "string" || typeof kind !== "string") {
      console.log(`FAIL ${name}: apiVersion and kind are required`);
      failed++;
      continue;
    }
    let Model;
    try {
      // "v1" -> v1/Kind, "apps/v1" -> apps/v1/Kind
      const mod = await import(`kubernetes-models/${apiVersion}/${kind}`);
      Model = mod[kind];
    } catch {
      console.log(`FAIL ${name}: unknown apiVersion/kind ${apiVersion} ${kind}`);
      failed++;
      continue;
    }
    try {
      new Model(obj).validate();
      console.log(`ok   ${name}`);
      checked++;
    } catch (e) {
      console.log(`FAIL ${name}: ${e.message}`);
      failed++;
    }
  }
}
console.log(`${checked} passed, ${failed} failed`);
process.exit(failed > 0 || checked === 0 ? 1 : 0);
