--[[----------------------------------------------------------------------------
fake_daemon.lua -- an in-process imitation of the truepix HTTP API (the shapes
of docs/protocol.md) for the Lightroom unit specs. The end-to-end spec uses a
real daemon instead.

  local daemon = fake_daemon.new{ token = 'secret', recipes = {...} }
  lr.http.handler = daemon.handler
  daemon.failures[path] = 'reason'   -- that file's job fails with the reason
  daemon.requests                    -- {method, path, body (decoded)} in order

Each GET of a job moves it one step: queued -> running (progress 0.5) -> done,
when it writes a small file at <output_dir or source folder>/<stem><the recipe's suffix>.tif
(-truepix-x2 for upscale, the default).
------------------------------------------------------------------------------]]

local json = require 'json'

local fake = {}

local function answer(status, value)
	return json.encode(value), { status = status }
end

local function problem(status, message)
	return answer(status, { error = { status = status, message = message } })
end

function fake.new(options)
	options = options or {}
	local daemon = {
		token = options.token or 'secret',
		recipes = options.recipes or {
			{ name = 'upscale', input = 'rgb', format = 'tiff', bits = 16, suffix = '-truepix-x2', guard = true,
				steps = { { model = 'upscale-x2' } } },
			{ name = 'develop', input = 'raw', format = 'tiff', bits = 16, suffix = '-truepix-develop', guard = true,
				steps = { { model = 'demosaic' } } },
		},
		jobs = {},
		failures = {},
		requests = {},
		stepsToDone = options.stepsToDone or 2,
		paused = false,
	}

	local function writeOutput(job)
		local folder = job.output_dir or job.source:match('^(.*)/[^/]*$')
		local stem = job.source:match('([^/]*)$'):gsub('%.[^.]*$', '')
		local recipe = type(job.recipe) == 'table' and job.recipe or {}
		for _, known in ipairs(daemon.recipes) do -- a recipe given by name: its listed suffix, as the daemon does
			if known.name == job.recipe then recipe = known end
		end
		local ext = ({ jpeg = 'jpg', png = 'png' })[recipe.format] or 'tif'
		local path = folder .. '/' .. stem .. (recipe.suffix or '-truepix-x2') .. '.' .. ext
		local f = assert(io.open(path, 'wb'))
		f:write('enhanced')
		f:close()
		return path
	end

	local function advance(job)
		if daemon.paused then
			return
		end
		if job.state == 'queued' then
			job.state, job.progress = 'running', 0.5
		elseif job.state == 'running' then
			job.steps = (job.steps or 1) + 1
			if job.steps >= daemon.stepsToDone then
				if daemon.failures[job.source] then
					job.state, job.error = 'failed', daemon.failures[job.source]
				else
					job.state, job.outputs, job.progress = 'done', { writeOutput(job) }, 1
				end
			end
		end
	end

	local function public(job)
		return {
			id = job.id, source = job.source, state = job.state, recipe = job.recipe, error = job.error or json.null,
			outputs = job.outputs or {}, progress = job.progress or 0, duplicate = false,
		}
	end

	function daemon.handler(method, url, body, headers)
		local path = url:match('^http://127%.0%.0%.1:%d+(/.*)$')
		local decoded = body and body ~= '' and json.decode(body) or nil
		daemon.requests[#daemon.requests + 1] = { method = method, path = path, body = decoded }
		local auth
		for _, header in ipairs(headers or {}) do
			if header.field:lower() == 'authorization' then
				auth = header.value
			end
		end
		if auth ~= 'Bearer ' .. daemon.token then
			return problem(401, 'missing or wrong token')
		end
		if method == 'GET' and path == '/v1/health' then
			return answer(200, { status = 'ok', version = '0.1.0', api = 1, pid = 4242 })
		elseif method == 'GET' and path == '/v1/status' then
			local counts = { queued = 0, running = 0, done = 0, failed = 0, cancelled = 0 }
			for _, job in pairs(daemon.jobs) do
				counts[job.state] = counts[job.state] + 1
			end
			return answer(200, { version = '0.1.0', paused = daemon.paused, counts = counts, current = json.null })
		elseif method == 'GET' and path == '/v1/recipes' then
			return answer(200, { default = daemon.recipes[1].name, recipes = daemon.recipes })
		elseif method == 'POST' and path == '/v1/jobs' then
			local jobs = {}
			for _, source in ipairs(decoded.paths) do
				local job = { id = #daemon.jobs + 1, source = source, state = 'queued', recipe = decoded.recipe,
					output_dir = decoded.output_dir }
				daemon.jobs[job.id] = job
				jobs[#jobs + 1] = public(job)
			end
			return answer(201, { jobs = jobs })
		end
		local id, action = path:match('^/v1/jobs/(%d+)/?(%a*)$')
		local job = id and daemon.jobs[tonumber(id)]
		if not job then
			return problem(404, 'no such job or endpoint: ' .. tostring(path))
		end
		if method == 'GET' and action == '' then
			advance(job)
			return answer(200, public(job))
		elseif method == 'POST' and action == 'cancel' then
			job.state, job.error = 'cancelled', 'cancelled by the client'
			return answer(200, public(job))
		end
		return problem(405, 'method not allowed')
	end

	function daemon.posts(pathPattern)
		local found = {}
		for _, request in ipairs(daemon.requests) do
			if request.method == 'POST' and request.path:match(pathPattern) then
				found[#found + 1] = request
			end
		end
		return found
	end

	return daemon
end

return fake
