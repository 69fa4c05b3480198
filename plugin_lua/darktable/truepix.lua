--[[
	truepix.lua - enhance photos with truepix from darktable's export module

	USAGE
	* install: `python packaging/plugins.py darktable` in a truepix checkout copies this file and
	  truepix_json.lua into <darktable config>/lua/contrib/ and adds `require "contrib/truepix"`
	  to luarc (with --no-luarc, enable "truepix" in the script manager instead)
	* start the truepix daemon: `truepix run` (or from its tray icon)
	* in the export module choose "truepix" as target storage, TIFF as format
	  (16 bit) and a recipe; press export
	* each enhanced photo is written beside its original, imported, grouped with it and given its
	  rating, colour labels and tags. Recipes that need the camera RAW send the original RAW file.

	PREFERENCES (preferences > lua options)
	* truepix port: 0 = read it from the daemon's state file (else 48620)
	* truepix token file: empty = the daemon's default (~/.config/truepix/token on Linux)

	The daemon is reached on 127.0.0.1 through `curl`; the token travels in a private temporary
	header file, never on the command line.
]]

local dt = require "darktable"
-- lua-scripts' lib/dtutils checks the API version when it is installed (the script manager brings
-- it); darktable's own packages do not ship it, so check the version ourselves without it.
local has_du, du = pcall(require, "lib/dtutils")
if has_du then
	du.check_min_api_version("7.0.0", "truepix")
elseif (tonumber(dt.configuration.api_version_major) or 0) < 7 then
	error("truepix needs darktable's Lua API 7.0.0 or later (darktable 4.0+), this darktable has "
		.. tostring(dt.configuration.api_version_string), 0)
end

local gettext = dt.gettext.gettext
local function _(msgid)
	return gettext(msgid)
end

local NAME = "truepix"
local DEFAULT_PORT = 48620
local LABELS = { "red", "yellow", "green", "blue", "purple" }
local FINISHED = { done = true, failed = true, cancelled = true }

local script_data = {}
script_data.metadata = {
	name = _("truepix"),
	purpose = _("enhance exported photos with the truepix daemon and import the results"),
	author = "the truepix authors",
}
script_data.destroy = nil -- set below
script_data.destroy_method = nil -- a storage is destroyed completely
script_data.restart = nil -- the script manager loads the script again
script_data.show = nil -- only for libs

-- Everything below hangs off M so that the specs can reach it (script_data.internals) and swap M.run.
local M = { os = dt.configuration.running_os }

local function sep()
	return M.os == "windows" and "\\" or "/"
end

-- The JSON codec shared with the Lightroom plug-in: truepix_json.lua beside this file once
-- installed, ../truepix.lrplugin/json.lua in the source tree.
local function load_json()
	local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
	local tried = {}
	for _, path in ipairs({ here .. "/truepix_json.lua", here .. "/../truepix.lrplugin/json.lua" }) do
		local chunk, err = loadfile(path)
		if chunk then
			return chunk()
		end
		tried[#tried + 1] = err
	end
	dt.print_error("truepix: " .. table.concat(tried, "; "))
	error("truepix: truepix_json.lua is missing; install it beside truepix.lua", 0)
end
local json = load_json()
M.json = json

-- Shell ------------------------------------------------------------------------------------------

-- Run a command; returns its output (stdout and stderr) and exit code. The specs replace this.
function M.run(cmd)
	local pipe = io.popen(cmd .. " 2>&1")
	if not pipe then
		return "", -1
	end
	local out = pipe:read("a") or ""
	local ok, how, code = pipe:close()
	if how == "exit" then
		return out, code
	end
	return out, ok and 0 or -1
end

function M.quote(s)
	if M.os == "windows" then
		return '"' .. s:gsub('"', "") .. '"' -- Windows file names cannot contain '"'
	end
	return "'" .. s:gsub("'", "'\\''") .. "'"
end

-- A new private temporary file name (POSIX os.tmpname() creates it with mode 0600).
function M.tmpname()
	local name = os.tmpname()
	if M.os == "windows" and not name:match("^%a:") then
		name = (os.getenv("TEMP") or os.getenv("TMP") or ".") .. name
	end
	return name
end

local function read_file(path)
	local f, err = io.open(path, "rb")
	if not f then
		return nil, err
	end
	local text = f:read("a")
	f:close()
	return text
end

local function write_file(path, text)
	local f, err = io.open(path, "wb")
	if not f then
		return nil, err
	end
	f:write(text)
	f:close()
	return true
end

-- Where the daemon keeps its token ("config") and state file ("state"): platformdirs' folders.
function M.user_dir(kind)
	local home = os.getenv("HOME") or ""
	if M.os == "windows" then
		return (os.getenv("LOCALAPPDATA") or home) .. "\\truepix"
	elseif M.os == "macos" then
		return home .. "/Library/Application Support/truepix"
	end
	local var, fallback = "XDG_CONFIG_HOME", "/.config"
	if kind == "state" then
		var, fallback = "XDG_STATE_HOME", "/.local/state"
	end
	local base = os.getenv(var)
	if not base or base:match("^%s*$") then
		base = home .. fallback
	end
	return base .. "/truepix"
end

-- Connection settings: port, token file and token, read afresh for every export.
function M.settings()
	local conn = { port = dt.preferences.read(NAME, "port", "integer") or 0 }
	if conn.port == 0 then
		local state = json.decode(read_file(M.user_dir("state") .. sep() .. "daemon.json") or "")
		conn.port = type(state) == "table" and math.tointeger(state.port) or DEFAULT_PORT
	end
	conn.token_file = dt.preferences.read(NAME, "token_file", "string") or ""
	if conn.token_file == "" then
		conn.token_file = M.user_dir("config") .. sep() .. "token"
	end
	local token, err = read_file(conn.token_file)
	conn.token, conn.token_error = token and token:match("^%s*(.-)%s*$"), err
	return conn
end

-- HTTP through curl -------------------------------------------------------------------------------

-- Returns the decoded answer, or nil and {kind = down|timeout|nocurl|curl|auth|http|bad, status, message}.
function M.request(conn, method, path, body, timeout)
	local header = M.tmpname()
	local ok, err = write_file(header, "Authorization: Bearer " .. (conn.token or "") ..
		"\nContent-Type: application/json\n")
	if not ok then
		return nil, { kind = "curl", message = _("cannot write a temporary file: ") .. tostring(err) }
	end
	local cmd = { "curl -sS --noproxy 127.0.0.1 --max-time", tostring(timeout or 15), "-w",
		M.quote("\n%{http_code}"), "-H", M.quote("@" .. header), "-X", method }
	local data
	if body ~= nil then
		data = M.tmpname()
		write_file(data, json.encode(body))
		cmd[#cmd + 1] = "--data-binary " .. M.quote("@" .. data)
	end
	cmd[#cmd + 1] = M.quote(string.format("http://127.0.0.1:%d%s", conn.port, path))
	local ran, out, code = pcall(M.run, table.concat(cmd, " "))
	os.remove(header) -- whatever happened: it holds the token
	if data then
		os.remove(data)
	end
	if not ran then
		error(out, 0)
	end
	local text, status = out:match("^(.*)\n(%d%d%d)%s*$")
	status = tonumber(status)
	if not status or status == 0 then
		local kinds = { [7] = "down", [28] = "timeout", [127] = "nocurl" }
		local kind = kinds[code] or (out:match("not recognized") and "nocurl") or "curl"
		return nil, { kind = kind, message = ((text or out):gsub("%s+$", "")) }
	end
	local answer = json.decode(text)
	if status < 200 or status > 299 then
		local message = type(answer) == "table" and type(answer.error) == "table" and answer.error.message
		return nil, { kind = status == 401 and "auth" or "http", status = status,
			message = type(message) == "string" and message or text:sub(1, 200) }
	elseif type(answer) ~= "table" then
		return nil, { kind = "bad", message = text:sub(1, 200) }
	end
	return answer
end

-- A sentence for the user about a failed request.
function M.describe(err, conn)
	local where = "127.0.0.1:" .. tostring(conn.port)
	if err.kind == "down" then
		return string.format(_("truepix is not running on %s — start it with `truepix run` (or from its tray icon)"),
			where)
	elseif err.kind == "timeout" then
		return string.format(_("truepix on %s did not answer in time (%s)"), where, err.message)
	elseif err.kind == "nocurl" then
		return _("truepix: `curl` was not found; darktable talks to truepix through curl, please install it")
	elseif err.kind == "auth" and conn.token_error then
		return string.format(_("truepix on %s needs its token, but the token file %s cannot be read (%s); " ..
			"set the token file in preferences > lua options"), where, conn.token_file, conn.token_error)
	elseif err.kind == "auth" then
		return string.format(_("truepix on %s refused the token from %s: %s"), where, conn.token_file, err.message)
	elseif err.kind == "http" then
		return string.format(_("truepix answered HTTP %d: %s"), err.status, err.message)
	elseif err.kind == "bad" then
		return string.format(_("truepix sent a malformed answer: %s"), err.message)
	end
	return string.format(_("truepix could not be reached on %s: %s"), where, err.message)
end

-- The daemon's recipes: names in its order, and name -> recipe; or nil and an error.
function M.recipes(conn)
	local answer, err = M.request(conn, "GET", "/v1/recipes", nil, 5)
	local names = {}
	for _, recipe in ipairs(answer and type(answer.recipes) == "table" and answer.recipes or {}) do
		if type(recipe) == "table" and type(recipe.name) == "string" then
			names[#names + 1], names[recipe.name] = recipe.name, recipe
		end
	end
	return answer and names, err
end

function M.selected_recipe()
	local name = dt.preferences.read(NAME, "recipe", "string")
	return (name and name ~= "") and name or "upscale"
end

-- Submit one file; a finished duplicate whose outputs are gone (or elsewhere) is forced again.
function M.submit(conn, path, recipe, out_dir)
	local body = { paths = { path }, recipe = recipe, output_dir = out_dir }
	while true do
		local answer, err = M.request(conn, "POST", "/v1/jobs", body, 60)
		local job = answer and type(answer.jobs) == "table" and answer.jobs[1]
		if not answer or type(job) ~= "table" or not math.tointeger(job.id) then
			return nil, err or { kind = "bad", message = "no job in the answer to a submit" }
		end
		local outputs = type(job.outputs) == "table" and job.outputs or {}
		local reusable = job.state ~= "done" or #outputs > 0
		for _, out in ipairs(job.state == "done" and outputs or {}) do
			reusable = reusable and out:sub(1, #out_dir + 1) == out_dir .. sep() and read_file(out) ~= nil
		end
		if job.duplicate ~= true or reusable or body.force then
			return job
		end
		body.force = true
	end
end

-- darktable's temporary export name is <tmp>/<name>.tif for every photo called <name>, so the next
-- export may overwrite a file the daemon has not read yet: move each into a folder of its own.
function M.set_aside(file, extra)
	local dir, base = file:match("^(.*)[/\\]([^/\\]+)$")
	if not dir then
		return file
	end
	extra.names[base] = (extra.names[base] or 0) + 1
	local folder = dir .. sep() .. extra.stamp .. "-" .. extra.names[base]
	if not extra.folders[folder] then
		local code = select(2, M.run("mkdir " .. M.quote(folder)))
		if code ~= 0 then
			return file
		end
		extra.folders[folder] = true
	end
	local moved = folder .. sep() .. base
	return os.rename(file, moved) and moved or file
end

-- Storage callbacks -----------------------------------------------------------------------------

local function supported(_storage, format)
	local ok, tiff = pcall(function()
		return format.plugin_name == "tiff" or format.extension == "tif"
	end)
	return ok and tiff
end

-- The TIFF's bit depth is the export module's choice: darktable hands a storage a copy of the
-- format's settings, so the storage cannot raise it to 16 bit (finalize says so when it was 8).
local function initialize(_storage, _format, images, _high_quality, extra)
	extra.conn, extra.recipe, extra.entries = M.settings(), M.selected_recipe(), {}
	extra.names, extra.folders = {}, {}
	extra.stamp = string.format("truepix-%d-%d", os.time(), math.random(100000, 999999))
	local health, err = M.request(extra.conn, "GET", "/v1/health", nil, 5)
	local names
	if health then
		names, err = M.recipes(extra.conn)
	end
	if err then
		extra.fatal = M.describe(err, extra.conn) -- printed by finalize, after darktable's "no image to export"
		return {}
	end
	local recipe = names[extra.recipe]
	if not recipe then
		extra.fatal = string.format(_("truepix does not know the recipe '%s' (it knows: %s)"), extra.recipe,
			table.concat(names, ", "))
		return {}
	end
	extra.input = recipe.input == "raw" and "raw" or "rgb"
	if extra.input == "raw" then
		local raws, why = {}, string.format(_("recipe '%s' works on camera RAW files and this photo is not one"),
			extra.recipe)
		for _, image in ipairs(images) do
			if image.is_raw then
				raws[#raws + 1] = image
			else
				extra.entries[#extra.entries + 1] = { image = image, state = "failed", error = why }
			end
		end
		return raws
	end
	return nil
end

local function store(_storage, image, format, filename, _number, _total, _high_quality, extra)
	if extra.fatal then
		os.remove(filename)
		return
	end
	local entry = { image = image, state = "queued" }
	extra.entries[#extra.entries + 1] = entry
	local path = image.path .. sep() .. image.filename
	if extra.input == "raw" then
		os.remove(filename) -- the daemon reads the RAW itself
	else
		local ok, bpp = pcall(function()
			return format.bpp
		end)
		extra.low_bits = extra.low_bits or (ok and type(bpp) == "number" and bpp < 16)
		path = M.set_aside(filename, extra)
		entry.temp = path
	end
	local job, err = M.submit(extra.conn, path, extra.recipe, image.path)
	if job then
		entry.id, entry.state, entry.outputs = job.id, job.state, job.outputs
	else
		entry.state, entry.error = "failed", M.describe(err, extra.conn)
	end
end

function M.cancel(extra)
	for _, entry in ipairs(extra.entries) do
		if entry.id and not FINISHED[entry.state] then
			M.request(extra.conn, "POST", "/v1/jobs/" .. entry.id .. "/cancel")
		end
	end
end

-- Poll the jobs about twice a second until all are finished, with a cancellable progress bar.
function M.wait(extra)
	local open = 0
	for _, entry in ipairs(extra.entries) do
		open = open + ((entry.id and not FINISHED[entry.state]) and 1 or 0)
	end
	if open == 0 then
		return
	end
	local job = dt.gui.create_job(string.format(_("truepix: %s, %d photos"), extra.recipe, open), true,
		function()
			M.cancel(extra)
		end)
	local silent = 0
	while true do
		local left, sum, answered = 0, 0, false
		for _, entry in ipairs(extra.entries) do
			if entry.id and not FINISHED[entry.state] then
				local answer, err = M.request(extra.conn, "GET", "/v1/jobs/" .. entry.id, nil, 10)
				if answer then
					answered = true
					entry.state, entry.outputs, entry.progress = answer.state, answer.outputs, answer.progress
					entry.error = type(answer.error) == "string" and answer.error or nil
				elseif err.kind == "http" or err.kind == "auth" then
					entry.state, entry.error = "failed", M.describe(err, extra.conn)
				end
			end
			left = left + ((entry.id and not FINISHED[entry.state]) and 1 or 0)
			sum = sum + (FINISHED[entry.state] and 1 or tonumber(entry.progress) or 0)
		end
		job.percent = math.min(1, sum / #extra.entries)
		silent = answered and 0 or silent + 1
		if left == 0 or silent >= 20 or dt.control.ending then
			extra.stalled = left > 0
			break
		end
		dt.control.sleep(500)
	end
	job.valid = false
end

function M.copy_metadata(source, image)
	image.rating = source.rating
	for _, label in ipairs(LABELS) do
		image[label] = source[label]
	end
	for _, tag in ipairs(dt.tags.get_tags(source) or {}) do
		if not tag.name:match("^darktable|") then
			dt.tags.attach(tag, image)
		end
	end
end

-- Import the outputs of a done job beside its source; returns an error message or nil.
function M.import(entry)
	for _, path in ipairs(entry.outputs or {}) do
		local ok, image = pcall(dt.database.import, path)
		if not ok or not image then
			return string.format(_("%s was written but could not be imported: %s"), path, tostring(image))
		end
		pcall(function()
			image:group_with(entry.image)
		end)
		M.copy_metadata(entry.image, image)
	end
end

local function finalize(_storage, image_table, extra)
	if extra.fatal then
		dt.print(extra.fatal)
		return
	end
	M.wait(extra)
	local done, cancelled, problems = 0, 0, {}
	local stalled = _("truepix stopped answering; the job stays in its queue and its result will appear " ..
		"beside the original")
	local failed = _("the job failed (the daemon's log says why)")
	for _, entry in ipairs(extra.entries) do
		local reason
		if entry.state == "done" then
			reason = M.import(entry)
			done = done + (reason and 0 or 1)
		elseif entry.state == "cancelled" then
			cancelled = cancelled + 1
		else
			reason = entry.state == "failed" and (entry.error or failed) or stalled
		end
		if reason then
			problems[#problems + 1] = string.format("truepix: %s: %s", entry.image.filename, reason)
		end
	end
	if not extra.stalled then -- the daemon may still need the files of jobs it has not finished
		for _, entry in ipairs(extra.entries) do
			if entry.temp then
				os.remove(entry.temp)
			end
		end
		for _, file in pairs(image_table) do
			os.remove(file)
		end
		for folder in pairs(extra.folders) do
			if not os.remove(folder) and M.os == "windows" then
				M.run("rmdir " .. M.quote(folder))
			end
		end
	end
	for _, line in ipairs(problems) do
		dt.print_error(line)
		dt.print(line)
	end
	local total = #extra.entries
	local summary = string.format(_("truepix: %d of %d photos enhanced with %s"), done, total, extra.recipe)
	if #problems > 0 then
		summary = summary .. string.format(_(", %d failed"), #problems)
	end
	if cancelled > 0 then
		summary = summary .. string.format(_(", %d cancelled"), cancelled)
	end
	if extra.low_bits then
		summary = summary .. _(" (the TIFFs were 8 bit: choose 16 bit in the export module for best results)")
	end
	dt.print(summary)
end

-- Widget, preferences, registration -------------------------------------------------------------

local filling = false
local recipe_combo = dt.new_widget("combobox"){
	label = _("recipe"),
	tooltip = _("what truepix does to each exported photo"),
	changed_callback = function(self)
		if not filling and self.value and self.value ~= "" then
			dt.preferences.write(NAME, "recipe", "string", self.value)
		end
	end,
	M.selected_recipe(),
}
M.recipe_combo = recipe_combo

-- Fill the combobox with the daemon's recipes (keeping the remembered one); quiet unless asked.
function M.refresh_recipes(verbose)
	local conn = M.settings()
	local names, err = M.recipes(conn)
	if not names then
		if verbose then
			dt.print(M.describe(err, conn))
		end
		return
	end
	local current, selected = M.selected_recipe(), nil
	filling = true
	for i, name in ipairs(names) do
		recipe_combo[i] = name
		selected = (name == current) and i or selected
	end
	for i = #recipe_combo, #names + 1, -1 do
		recipe_combo[i] = nil
	end
	recipe_combo.selected = selected or 1
	filling = false
	dt.preferences.write(NAME, "recipe", "string", names[selected or 1] or current)
end

dt.preferences.register(NAME, "port", "integer", _("truepix: port"),
	_("port of the truepix daemon on 127.0.0.1; 0 = read it from the daemon's state file (else 48620)"),
	0, 0, 65535)
dt.preferences.register(NAME, "token_file", "string", _("truepix: token file"),
	_("file holding the daemon's API token; empty = the daemon's default location"), "")

local widget = dt.new_widget("box"){
	orientation = "vertical",
	recipe_combo,
	dt.new_widget("button"){
		label = _("reload recipes"),
		tooltip = _("ask the truepix daemon for its recipes again"),
		clicked_callback = function()
			M.refresh_recipes(true)
		end,
	},
}

dt.register_storage(NAME, _("truepix"), store, finalize, supported, initialize, widget)
pcall(M.refresh_recipes, false)

script_data.destroy = function()
	dt.destroy_storage(NAME)
end
script_data.internals = M

return script_data
