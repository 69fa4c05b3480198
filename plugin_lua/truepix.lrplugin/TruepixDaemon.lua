--[[----------------------------------------------------------------------------
TruepixDaemon.lua -- talks to the local truepix daemon (`truepix run`) over its
HTTP API on 127.0.0.1 (docs/protocol.md in the truepix repository).

Every function that reaches the daemon must run inside an LrTasks task (LrHttp
needs one). Failures come back as (nil, err) with err = {
  kind    = 'not_running' | 'unauthorized' | 'no_token' | 'http' | 'bad_answer',
  status  = HTTP status or nil,
  message = a sentence for the photographer, naming what to do,
}
------------------------------------------------------------------------------]]

local LrHttp = import 'LrHttp'
local LrPathUtils = import 'LrPathUtils'
local LrPrefs = import 'LrPrefs'

local json = require 'json'

local TruepixDaemon = {}

TruepixDaemon.DEFAULT_PORT = 48620
TruepixDaemon.API = 1

local function trim(s)
	return (s:gsub('^%s+', ''):gsub('%s+$', ''))
end

local function readFile(path)
	local f = path and io.open(path, 'rb')
	if not f then
		return nil
	end
	local data = f:read('*a')
	f:close()
	return data
end

-- The folder where the daemon keeps its token and state file: platformdirs'
-- user_config_dir / user_state_dir for "truepix" (see service/paths.py).
local function appFolders()
	if WIN_ENV then
		local base = os.getenv('LOCALAPPDATA') or LrPathUtils.getStandardFilePath('appData')
		local dir = LrPathUtils.child(base, 'truepix')
		return dir, dir
	end
	local home = os.getenv('HOME') or LrPathUtils.getStandardFilePath('home')
	if MAC_ENV then
		local dir = LrPathUtils.child(LrPathUtils.child(LrPathUtils.child(home, 'Library'), 'Application Support'),
			'truepix')
		return dir, dir
	end
	local config = os.getenv('XDG_CONFIG_HOME') or LrPathUtils.child(home, '.config')
	local state = os.getenv('XDG_STATE_HOME') or LrPathUtils.child(LrPathUtils.child(home, '.local'), 'state')
	return LrPathUtils.child(config, 'truepix'), LrPathUtils.child(state, 'truepix')
end

function TruepixDaemon.defaultTokenPath()
	local config = appFolders()
	return LrPathUtils.child(config, 'token')
end

function TruepixDaemon.statePath()
	local _, state = appFolders()
	return LrPathUtils.child(state, 'daemon.json')
end

-- Where to reach the daemon: the port set in the Plug-in Manager, else the one
-- the running daemon wrote to its state file, else the default port.
function TruepixDaemon.connection()
	local prefs = LrPrefs.prefsForPlugin()
	local port = tonumber(prefs.port)
	local source = 'Plug-in Manager'
	if not port or port <= 0 then
		local state = json.decode(readFile(TruepixDaemon.statePath()) or '')
		port = type(state) == 'table' and tonumber(state.port) or nil
		source = 'state file'
		if not port or port <= 0 then
			port = TruepixDaemon.DEFAULT_PORT
			source = 'default'
		end
	end
	local tokenPath = prefs.tokenPath
	if type(tokenPath) ~= 'string' or trim(tokenPath) == '' then
		tokenPath = TruepixDaemon.defaultTokenPath()
	end
	return { port = port, portSource = source, tokenPath = tokenPath }
end

local function notRunning(conn)
	return {
		kind = 'not_running',
		message = ('truepix is not running: nothing answers on 127.0.0.1:%d. Start it with "truepix run" '
			.. '(or from its tray icon) and try again.'):format(conn.port),
	}
end

-- One request; returns the decoded JSON answer, or nil and an error table.
function TruepixDaemon.request(conn, method, path, body, timeout)
	local token = readFile(conn.tokenPath)
	if not token or trim(token) == '' then
		return nil, {
			kind = 'no_token',
			message = ('No truepix token in %s. Start truepix once ("truepix run") to create it, '
				.. 'or set the token file in File > Plug-in Manager > truepix.'):format(conn.tokenPath),
		}
	end
	local url = ('http://127.0.0.1:%d%s'):format(conn.port, path)
	local headers = { { field = 'Authorization', value = 'Bearer ' .. trim(token) } }
	local answer, info
	if method == 'GET' then
		answer, info = LrHttp.get(url, headers, timeout or 15)
	else
		headers[2] = { field = 'Content-Type', value = 'application/json' }
		answer, info = LrHttp.post(url, body and json.encode(body) or '', headers, method, timeout or 30)
	end
	local status = type(info) == 'table' and tonumber(info.status) or nil
	if not status then
		return nil, notRunning(conn)
	end
	local decoded = json.decode(answer or '')
	if status == 401 then
		return nil, {
			kind = 'unauthorized',
			status = status,
			message = ('truepix refused the token in %s. Use the token file of the truepix that is running '
				.. '(it is %s unless changed), set in File > Plug-in Manager > truepix.')
				:format(conn.tokenPath, TruepixDaemon.defaultTokenPath()),
		}
	end
	if status >= 400 then
		local reason = type(decoded) == 'table' and type(decoded.error) == 'table' and decoded.error.message
		return nil, { kind = 'http', status = status, message = reason or ('truepix answered HTTP %d'):format(status) }
	end
	if type(decoded) ~= 'table' then
		return nil, {
			kind = 'bad_answer',
			status = status,
			message = ('Something other than truepix answers on 127.0.0.1:%d (not a JSON answer). '
				.. 'Check the port in File > Plug-in Manager > truepix.'):format(conn.port),
		}
	end
	return decoded
end

function TruepixDaemon.health(conn)
	local answer, err = TruepixDaemon.request(conn, 'GET', '/v1/health', nil, 5)
	if answer and answer.status ~= 'ok' then
		return nil, { kind = 'bad_answer', message = 'truepix answered its health check with an unexpected answer' }
	end
	return answer, err
end

-- The recipes the daemon knows: list of {name=, input='rgb'|'raw', format=, ...}, default name.
function TruepixDaemon.recipes(conn)
	local answer, err = TruepixDaemon.request(conn, 'GET', '/v1/recipes', nil, 10)
	if not answer then
		return nil, err
	end
	return answer.recipes or {}, answer.default
end

-- Items for a recipe popup_menu, each saying what Lightroom sends; `renderedOnly` leaves out
-- the recipes that need the RAW original (a post-process action only has rendered pixels).
function TruepixDaemon.menuItems(recipes, renderedOnly)
	local items = {}
	for _, recipe in ipairs(recipes) do
		if recipe.input == 'raw' and not renderedOnly then
			items[#items + 1] = { title = recipe.name .. ' (sends the RAW original)', value = recipe.name }
		elseif recipe.input ~= 'raw' then
			items[#items + 1] = { title = recipe.name .. ' (Lightroom renders a 16-bit TIFF)', value = recipe.name }
		end
	end
	return items
end

function TruepixDaemon.findRecipe(recipes, name)
	local names = {}
	for _, recipe in ipairs(recipes) do
		if recipe.name == name then
			return recipe
		end
		names[#names + 1] = recipe.name
	end
	return nil, ('truepix does not know the recipe "%s" (it knows: %s). Choose another in the export dialog.')
		:format(tostring(name), table.concat(names, ', '))
end

-- Submit one file; returns the job table. `recipe` is a name or an inline recipe table;
-- `force` processes the file again even if the daemon did it with this recipe before.
function TruepixDaemon.submit(conn, path, recipe, outputDir, force)
	local answer, err = TruepixDaemon.request(conn, 'POST', '/v1/jobs',
		{ paths = { path }, recipe = recipe, output_dir = outputDir, force = force or nil })
	if not answer then
		return nil, err
	end
	local job = answer.jobs and answer.jobs[1]
	if type(job) ~= 'table' or not job.id then
		return nil, { kind = 'bad_answer', message = 'truepix accepted the file but returned no job' }
	end
	return job
end

-- paused?, job counts per state, the current job (see docs/protocol.md).
function TruepixDaemon.status(conn)
	return TruepixDaemon.request(conn, 'GET', '/v1/status', nil, 10)
end

function TruepixDaemon.job(conn, id)
	return TruepixDaemon.request(conn, 'GET', '/v1/jobs/' .. tostring(id), nil, 10)
end

function TruepixDaemon.cancel(conn, id)
	return TruepixDaemon.request(conn, 'POST', '/v1/jobs/' .. tostring(id) .. '/cancel', nil, 10)
end

return TruepixDaemon
