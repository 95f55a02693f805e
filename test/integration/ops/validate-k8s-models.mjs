// Validates Kubernetes objects with the kubernetes-models packages (ES modules, which the
// CommonJS jest runtime cannot load: kubernetes.test.ts runs this file with node).
// stdin: a JSON array of objects. stdout: a JSON array, one entry per object:
// { ok: true } or { ok: false, error }.
import process from 'node:process';

const MODULES = {
  'monitoring.coreos.com': '@kubernetes-models/prometheus-operator/monitoring.coreos.com',
};

async function modelFor(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const base = MODULES[group] ?? (group ? `kubernetes-models/${group}` : 'kubernetes-models');
  const specifier = `${base}/${version}`;
  let mod;
  try {
    mod = await import(specifier);
  } catch (e) {
    throw new Error(`no models for apiVersion ${apiVersion} (${specifier}: ${e.message})`, {
      cause: e,
    });
  }
  const Model = mod[kind];
  if (typeof Model !== 'function') throw new Error(`no model for ${apiVersion} ${kind}`);
  return Model;
}

let input = '';
for await (const chunk of process.stdin) input += chunk;
const results = [];
for (const obj of JSON.parse(input)) {
  try {
    if (!obj || typeof obj.apiVersion !== 'string' || typeof obj.kind !== 'string') {
      throw new Error('object without apiVersion and kind');
    }
    const Model = await modelFor(obj.apiVersion, obj.kind);
    new Model(obj).validate();
    results.push({ ok: true });
  } catch (e) {
    results.push({ ok: false, error: e.message });
  }
}
process.stdout.write(JSON.stringify(results));
