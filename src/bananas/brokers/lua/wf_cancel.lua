#!lua
-- wf_cancel: cancel a workflow (WorkflowHandle.cancel, docs/workflows.md).
--
-- KEYS[1]  wf: the workflow's hash
-- ARGV[1]  id: the workflow id
-- ARGV[2]  wf_context: the workflow's prefixes (keys.Keys.wf_context, _wf.lua)
--
-- Waiting, queued and scheduled steps are cancelled at once (they never
-- run); running ones are flagged as cancel.lua flags a running job, and
-- their workers stop them (they settle cancelled; their workflow is already
-- final by then). The workflow is final, `cancelled`, in this script.
--
-- Returns: 'cancelled'; the final state it already had ('completed',
-- 'failed', 'cancelled'); 'building' (not started: try again); or 'unknown'.

-- @include _clock.lua
-- @include _index.lua
-- @include _wf.lua

local state = redis.call('HGET', KEYS[1], 'state')
if not state then return 'unknown' end
if state ~= 'running' then return state end
wf_stop(wf_ctx(ARGV[2]), ARGV[1], KEYS[1], 'cancelled', now_ms(), '', 'cancelled')
return 'cancelled'
