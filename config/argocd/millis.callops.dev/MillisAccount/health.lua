-- Argo CD health of a MillisAccount (millis.callops.dev). docs/argocd.md
-- explains each status; the tests are health_test.yaml and, against the
-- real reconciler, controllers/argocd_health_test.go.
--
--   Progressing  the operator has not verified this generation yet
--   Healthy      Ready=True: Millis accepted the API key
--   Degraded     Ready=False, whatever the reason: nothing can be dialed
--                through the account. Every reason needs a person (a
--                missing Secret or key, a rejected key, a bad endpoint) or
--                is a Millis outage, which the account is the one place to
--                show. Agents, calls and campaigns waiting on the account
--                stay Progressing, so one cause raises one alert.
--
-- Only the base library is used: Argo CD runs custom health checks without
-- the string, math and os libraries.

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
if ready == nil or observed < generation then
  return {status = "Progressing", message = "Waiting for the operator to verify generation " .. tostring(generation)}
end
if ready.status == "True" then
  return {status = "Healthy", message = describe(ready)}
end
if ready.status == "False" then
  return {status = "Degraded", message = describe(ready)}
end
return {status = "Progressing", message = describe(ready)}
