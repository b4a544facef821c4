-- Argo CD health of an OutboundCall (millis.callops.dev). docs/argocd.md
-- explains each status; the tests are health_test.yaml and, against the
-- real reconciler, controllers/argocd_health_test.go.
--
--   Healthy      phase Succeeded: the call connected and ended
--   Degraded     phase Failed: Millis rejected the call, or it did not
--                connect (busy, no-answer, failed, ...); or a Pending call
--                that only a person can unblock: its templates or metadata
--                are wrong, a prefetch Secret or ConfigMap is missing, or
--                Millis has no agent with spec.agentID
--   Progressing  everything before the end: not yet looked at, Pending on
--                something that resolves by itself or reports its own health
--                (the MillisAccount, the Agent, a rate limit, a Millis outage,
--                a dial being proven), Dialing, InProgress
--
-- A dialed call is judged by its phase alone: its spec is frozen once
-- dialed, and the operator does not restamp observedGeneration when a
-- lifecycle field such as terminateOnDelete is edited afterwards.
--
-- Only the base library is used: Argo CD runs custom health checks without
-- the string, math and os libraries.

local needsPerson = {
  TemplateError = true,
  MetadataTooLarge = true,
  PrefetchSourceNotFound = true,
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

local function describe(c, fallback)
  if c == nil then
    return fallback
  end
  if c.message == nil or c.message == "" then
    return c.reason or fallback
  end
  return (c.reason or "") .. ": " .. c.message
end

local phase = nil
if obj.status ~= nil then
  phase = obj.status.phase
end

if phase == "Succeeded" then
  return {status = "Healthy", message = describe(condition("Complete"), "the call ended")}
end
if phase == "Failed" then
  return {status = "Degraded", message = describe(condition("Failed"), "the call failed")}
end

local dialed = condition("Dialed")
if phase == "Dialing" or phase == "InProgress" then
  return {status = "Progressing", message = describe(dialed, phase)}
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = 0
if obj.status ~= nil and obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end
if phase == nil or phase == "" or dialed == nil or observed < generation then
  return {status = "Progressing", message = "Waiting for the operator to observe generation " .. tostring(generation)}
end
if dialed.status == "False" and needsPerson[dialed.reason] then
  return {status = "Degraded", message = describe(dialed, phase)}
end
return {status = "Progressing", message = describe(dialed, phase)}
