-- Argo CD health of a CallCampaign (millis.callops.dev). docs/argocd.md
-- explains each status; the tests are health_test.yaml and, against the
-- real reconciler, controllers/argocd_health_test.go.
--
--   Healthy      Complete=True: every recipient finished, or the deadline
--                passed (unanswered recipients are results, not faults)
--   Suspended    spec.suspend is true (Suspended=True once observed)
--   Progressing  Running=True (calls in flight, or waiting for a calling
--                window, a retry backoff or the start time), waiting for
--                its Agent or MillisAccount (which report their own health),
--                or a generation the operator has not observed yet
--   Degraded     Failed=True (the spec cannot run, e.g. an unknown time
--                zone), Complete=True with no valid recipient at all, a
--                recipient or do-not-call ConfigMap that is missing, or an
--                agentID that Millis cannot give
--
-- Only the base library is used: Argo CD runs custom health checks without
-- the string, math and os libraries.

local needsPerson = {
  InvalidSpec = true,
  RecipientSourceNotFound = true,
  AgentNotFound = true,
}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

local function isTrue(c)
  return c ~= nil and c.status == "True"
end

local function describe(c)
  if c.message == nil or c.message == "" then
    return c.reason or ""
  end
  return (c.reason or "") .. ": " .. c.message
end

local suspend = obj.spec ~= nil and obj.spec.suspend == true
local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = 0
if obj.status ~= nil and obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end

local running = condition("Running")
if running == nil or observed < generation then
  if suspend then
    return {status = "Suspended", message = "spec.suspend is true"}
  end
  return {status = "Progressing", message = "Waiting for the operator to observe generation " .. tostring(generation)}
end

local failed = condition("Failed")
if isTrue(failed) then
  return {status = "Degraded", message = describe(failed)}
end
local complete = condition("Complete")
if isTrue(complete) then
  if complete.reason == "NoValidRecipients" then
    return {status = "Degraded", message = describe(complete)}
  end
  return {status = "Healthy", message = describe(complete)}
end
local suspended = condition("Suspended")
if suspend or isTrue(suspended) then
  if isTrue(suspended) then
    return {status = "Suspended", message = describe(suspended)}
  end
  return {status = "Suspended", message = "spec.suspend is true"}
end
if running.status == "False" and needsPerson[running.reason] then
  return {status = "Degraded", message = describe(running)}
end
return {status = "Progressing", message = describe(running)}
