-- Argo CD health of an Agent (millis.callops.dev). docs/argocd.md explains
-- each status; the tests are health_test.yaml and, against the real
-- reconciler, controllers/argocd_health_test.go.
--
--   Progressing  the operator has not observed this generation yet, or it
--                is getting there by itself: creating the Millis agent,
--                settling a create whose outcome is unknown, retrying an
--                unavailable Millis, or waiting for its MillisAccount (which
--                reports its own health)
--   Healthy      Ready=True and Synced=True: the Millis agent exists and
--                matches the spec
--   Degraded     a person must act: Millis rejected the config
--                (TerminalError), the externalID is taken or gone, a phone
--                number is bound elsewhere, the API key was refused, or an
--                ObserveOnly agent drifted from the spec (the operator never
--                writes it back). Unknown reasons are Degraded too.
--
-- Ready keeps its first reason until the agent exists, so while the agent
-- is not Ready the current reason is Synced's.
--
-- Only the base library is used: Argo CD runs custom health checks without
-- the string, math and os libraries.

local transient = {
  Creating = true,
  CreateUncertain = true,
  MillisUnavailable = true,
  AccountNotReady = true,
  AccountNotFound = true,
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

local function describe(c)
  if c.message == nil or c.message == "" then
    return c.reason or ""
  end
  return (c.reason or "") .. ": " .. c.message
end

local generation = 0
if obj.metadata ~= nil and obj.metadata.generation ~= nil then
  generation = obj.metadata.generation
end
local observed = 0
if obj.status ~= nil and obj.status.observedGeneration ~= nil then
  observed = obj.status.observedGeneration
end

local ready = condition("Ready")
local synced = condition("Synced")
if ready == nil or observed < generation then
  return {status = "Progressing", message = "Waiting for the operator to observe generation " .. tostring(generation)}
end

local cause = ready
if synced ~= nil and synced.status == "False" then
  cause = synced
end
if ready.status == "True" and cause == ready then
  if synced ~= nil then
    return {status = "Healthy", message = describe(synced)}
  end
  return {status = "Healthy", message = describe(ready)}
end
if cause.status == "Unknown" or transient[cause.reason] then
  return {status = "Progressing", message = describe(cause)}
end
return {status = "Degraded", message = describe(cause)}
