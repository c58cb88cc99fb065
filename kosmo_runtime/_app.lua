-- kosmo app layer: `app.integrations`, account namespaces and the docs functions.
-- Runs after the bootstrap with its kit and the host functions; everything the
-- script can reach is a read-only Lua table or a Lua closure.
--
-- app.integrations["goto-webinar"] and app.integrations.goto_webinar are the same
-- table; functions are found by short or full name; `.default` and named accounts
-- are sub-namespaces with the same functions and other credentials.

local kit, host = ...
local call, call_flat, settled, SETTLED, usage, extend = kit.call, kit.call_flat, kit.settled, kit.SETTLED, kit.usage, kit.extend
local setmetatable, type, tostring, error, next, select, ipairs = setmetatable, type, tostring, error, next, select, ipairs

local is_namespace = setmetatable({}, {__mode = "k"})
local co_create, co_resume, co_status, co_yield, co_running, co_close, co_isyieldable =
  coroutine.create, coroutine.resume, coroutine.status, coroutine.yield, coroutine.running, coroutine.close,
  coroutine.isyieldable
local pack = table.pack
local math_type = math.type
local getinfo, getmetatable, pcall = debug.getinfo, getmetatable, pcall

-- The host functions most runs never call (listing, app.parallel, the docs), handed over on
-- first use: each Python function handed to Lua costs a wrapper when the layer loads.
local rare = nil
local function rare_host()
  if rare == nil then rare = call(host.rare) end
  return rare
end

-- Where the script last looked up an integration function: a call made as a tail call
-- (`return app.integrations.x.f{}`) has no script frame left when it fails, so its error
-- names this line instead.
local looked_up_at = {}

-- `info` is getinfo(2, "fl") in the namespace's __index: the indexing code. (The function and line
-- only: its name is read when an error needs it. The runtime's own code is stripped of line
-- numbers, so a line > 0 is the script's.)
local function note_lookup(info)
  if info and info.currentline > 0 then looked_up_at.func, looked_up_at.line = info.func, info.currentline end
end

-- A call's outcome: its value, or its error re-raised, naming the lookup's line when the call
-- was a tail call (asked only then: level 2 is the function's wrapper, which called this
-- function not as a tail call, so its frame is still there).
local function located(ok, ...)
  if ok then return ... end
  local err = ...
  if type(err) == "table" and err.line == nil and looked_up_at.line and getmetatable(err) == "kosmo.error"
      and getinfo(2, "t").istailcall then
    err.script, err.line = getinfo(looked_up_at.func, "S").short_src, looked_up_at.line
  end
  error(err, 0)
end

-- app.parallel: branches run in coroutines; an integration call inside a branch is
-- submitted to the host and the branch yields WAIT until the host reports it done. Only
-- the scheduler resumes a branch (it passes RESUMED; the script's coroutine functions refuse
-- a branch, see kit.own), and when app.parallel returns every branch is closed. A call the
-- branch cannot yield from (inside a C function: a string.gsub callback, a table.sort
-- comparator, a metamethod called from C) is made at once instead, as outside app.parallel.
local WAIT, RESUMED = {}, {}
local branch_of = setmetatable({}, {__mode = "k"})
local MAX_CONCURRENCY = 64
local scheduling = false  -- an app.parallel is running (they do not nest)

-- A call's named arguments as key, value, ... when every key is text and every value is text, a
-- boolean or a finite number (at most 8 of them, or none: the common call): the host takes them as
-- they are instead of walking a table. One argument crosses as it is; more are gathered in `flat`,
-- scratch filled and passed in one go.
local utf8_len, unpack, HUGE = utf8.len, table.unpack, math.huge
local flat = {}
local function plain(k, v)
  if type(k) ~= "string" or not utf8_len(k) then return false end
  local kind = type(v)
  if kind == "string" then return utf8_len(v) ~= nil end
  if kind == "number" then return v == v and v ~= HUGE and v ~= -HUGE end
  return kind == "boolean"
end
local function flatten(args)
  local n = 0
  for k, v in next, args do
    if n >= 16 or not plain(k, v) then return nil end
    flat[n + 1], flat[n + 2] = k, v
    n = n + 2
  end
  if n == 0 and getmetatable(args) ~= nil then return nil end  -- an empty json.array is a list: the converter refuses it
  return n
end

-- An integration function's call: `handle` names it to the host (AppHost.member gave it), `id`,
-- `account` and `name` are for app.parallel's submit. (A call outside app.parallel whose arguments
-- cross flat takes the wrapper's own path instead: see make_function.)
local host_call, host_call_flat = host.call, host.call_flat
local function call_integration(handle, args, id, account, name)
  if branch_of[co_running()] and co_isyieldable() then
    local ticket = call(rare_host().submit, id, account, name, args)
    local token, ok, value = co_yield(WAIT, ticket)
    if token ~= RESUMED then error("app.parallel: a branch was resumed while it waited for a call", 0) end
    if ok then return value end
    kit.raise(value)
  end
  local n = flatten(args)
  if n then return call_flat(host_call_flat, handle, unpack(flat, 1, n)) end
  return call(host_call, handle, args)
end

-- The arguments of a call that did not pass one table (or passed the namespace: a colon call).
local function arguments_of(args, extra, label, where)
  if is_namespace[args] then
    usage(label .. ": call it with a dot, not a colon: " .. label .. "{...}",
          "write app.integrations.x.fn{...} or fn({...}), never x:fn{...}", where)
  end
  if extra ~= nil then
    usage(label .. " takes one table of named arguments, e.g. " .. label .. "{name = value}", nil, where)
  end
  if args == nil then return {} end
  if type(args) ~= "table" then
    usage(label .. " takes one table of named arguments, e.g. " .. label .. "{name = value}; got a " .. type(args),
          nil, where)
  end
  return args
end

-- The common call (outside app.parallel, arguments that cross flat) is made by the wrapper itself:
-- one protected host call, its value returned at once when the host settled it (kit.call_flat's
-- protocol, inline); anything else (an error, a limit, a value to unwrap) is unwrapped under a
-- second pcall, so that its error is located as every call's is.
local function make_function(id, account, name, label, handle)
  local where = {id, name}
  return function(args, extra)
    if type(args) ~= "table" or extra ~= nil or is_namespace[args] then args = arguments_of(args, extra, label, where) end
    if branch_of[co_running()] == nil then
      local ok, status, value
      local k, v = next(args)
      if k ~= nil and next(args, k) == nil and plain(k, v) then
        ok, status, value = pcall(host_call_flat, handle, k, v)
      else
        local n = flatten(args)
        if not n then return (located(pcall(call, host_call, handle, args))) end
        ok, status, value = pcall(host_call_flat, handle, unpack(flat, 1, n))
      end
      if ok and status == SETTLED then return value end
      return (located(pcall(settled, ok, status, value)))
    end
    return (located(pcall(call_integration, handle, args, id, account, name)))
  end
end

local function locked_newindex(label)
  return function(_, key)
    error(label .. " is read-only (cannot set '" .. tostring(key) .. "')", 2)
  end
end

local function namespace(id, account)
  local label = account and (id .. "." .. account) or id
  local functions, accounts, by_name = {}, {}, {}   -- key -> function, key -> account namespace
  local proxy = {}
  setmetatable(proxy, {
    __index = function(_, key)
      local fn = functions[key]
      if fn ~= nil then
        note_lookup(getinfo(2, "fl"))
        return fn
      end
      local sub = accounts[key]
      if sub ~= nil then return sub end
      if type(key) ~= "string" then return nil end
      local kind, name, handle = call(host.member, id, account, key)
      if kind == "function" then note_lookup(getinfo(2, "fl")) end
      local value = by_name[kind .. ":" .. name]
      if value == nil then
        if kind == "function" then
          value = make_function(id, account, name, label .. "." .. name, handle)
        else
          value = namespace(id, name)
        end
        by_name[kind .. ":" .. name] = value
      end
      if kind == "function" then functions[key] = value else accounts[key] = value end
      return value
    end,
    __newindex = locked_newindex(label),
    __pairs = function()
      local names = call(rare_host().members, id, account)
      local i = 0
      return function()
        i = i + 1
        local name = names[i]
        if name ~= nil then return name, proxy[name] end
      end
    end,
    __tostring = function() return "integration " .. label end,
    __metatable = "locked",
  })
  is_namespace[proxy] = true
  kit.protect(proxy, label)
  return proxy
end

local by_id = {}
local integrations = setmetatable({}, {
  __index = function(self, key)
    if type(key) ~= "string" then return nil end
    local id = call(host.integration, key)
    local ns = by_id[id]
    if ns == nil then
      ns = namespace(id, nil)
      by_id[id] = ns
    end
    return ns
  end,
  __newindex = locked_newindex("app.integrations"),
  __pairs = function(self)
    local names = call(rare_host().integrations)
    local i = 0
    return function()
      i = i + 1
      local name = names[i]
      if name ~= nil then return name, self[name] end
    end
  end,
  __tostring = function() return "app.integrations" end,
  __metatable = "locked",
})
kit.protect(integrations, "app.integrations")

local function parallel(branches, options)
  if type(branches) ~= "table" then
    usage("app.parallel expects a list of functions, e.g. app.parallel({function() ... end, function() ... end})")
  end
  local n = #branches
  for i = 1, n do
    if type(branches[i]) ~= "function" then usage("app.parallel: item " .. i .. " is a " .. type(branches[i]) .. ", not a function") end
  end
  local concurrency = 8
  if options ~= nil then
    if type(options) ~= "table" then usage("app.parallel: options must be a table, e.g. {concurrency = 8}") end
    concurrency = options.concurrency or concurrency
    if math_type(concurrency) ~= "integer" or concurrency < 1 or concurrency > MAX_CONCURRENCY then
      usage("app.parallel: concurrency must be a whole number from 1 to " .. MAX_CONCURRENCY)
    end
  end
  if scheduling then
    usage("app.parallel cannot be nested: a branch (or code it calls) started another app.parallel",
          "build one list of branches and call app.parallel once, or call the inner functions directly")
  end
  local results, coroutines, waiting = {}, {}, {}
  local started, running = 0, 0

  local function finish(i, result)
    results[i] = result
    running = running - 1
    local co = coroutines[i]
    if co_status(co) == "suspended" then co_close(co) end
    kit.release(co)
  end

  local function step(i, ...)
    local co = coroutines[i]
    local r = pack(kit.guard(co_resume(co, ...)))
    if not r[1] then
      finish(i, {ok = false, error = r[2]})
    elseif co_status(co) == "dead" then
      finish(i, {ok = true, value = r[2]})
    elseif r[2] == WAIT then
      waiting[r[3]] = i
    else
      finish(i, {ok = false, error = "app.parallel: a branch yielded outside of an integration call"})
    end
  end

  local function schedule()
    while true do
      while started < n and running < concurrency do
        started = started + 1
        local co = kit.arm(co_create(branches[started]))
        branch_of[co] = true
        kit.own(co, "app.parallel")
        coroutines[started] = co
        running = running + 1
        step(started)
      end
      if running == 0 then break end
      for _, done in ipairs(call(rare_host().wait_any)) do
        local i = waiting[done.ticket]
        if i then
          waiting[done.ticket] = nil
          step(i, RESUMED, done.ok, done.value)
        end
      end
    end
  end

  scheduling = true
  local ok, err = pcall(schedule)
  scheduling = false
  for i = 1, started do   -- a branch left waiting (the scheduler stopped early) is closed too
    local co = coroutines[i]
    if co_status(co) == "suspended" then co_close(co) end
    kit.release(co)
  end
  if not ok then error(err, 0) end
  return kit.mark_array(results)
end

-- A state serves one run after another: what a run looked up (namespaces, functions, its last
-- lookup and arguments) goes when it ends, and the next run looks its names up again.
kit.on_reset(function()
  by_id, looked_up_at, flat, rare, scheduling = {}, {}, {}, nil, false
end)

local app = kit.readonly({integrations = integrations, parallel = parallel}, "app")
extend("app", app)

extend("lua_list_docs", function(...)
  if select("#", ...) > 0 then usage("lua_list_docs takes no arguments") end
  return call(rare_host().list_docs)
end)
extend("lua_search_docs", function(query, limit)
  if type(query) ~= "string" then usage("lua_search_docs(query) expects a string, e.g. lua_search_docs(\"webinar sessions\")") end
  return call(rare_host().search_docs, query, limit)
end)
extend("lua_read_doc", function(path)
  if type(path) ~= "string" then usage("lua_read_doc(path) expects a string, e.g. lua_read_doc(\"integrations.whereby\")") end
  return call(rare_host().read_doc, path)
end)
