--[[----------------------------------------------------------------------------
darktable_standin.lua -- a stand-in for darktable's Lua API (the `darktable`
module and lib/dtutils) for the darktable script's specs. It records what the
script does so that the specs can check it.

  local standin = dofile(".../darktable_standin.lua")
  local dt = standin.install{ prefs = { ["truepix/port"] = 48999 } }
  local script_data = dofile(".../darktable/truepix.lua")
  local photo = standin.image{ path = "/photos", filename = "a.CR2", rating = 3, red = true,
                               tags = { "people|ana" }, is_raw = true }
  standin.export{ photo }            -- initialize, store each rendered file, finalize

Recorded: standin.prints (dt.print), errors (dt.print_error), storages (by
plugin name), destroyed, prefs, imports, groups ({image, leader}), attached
({tag, image}), jobs (dt.gui.create_job), sleeps, api_checks, widgets.
standin.on_sleep(ms), when set, runs in dt.control.sleep (what a user does
while darktable waits, e.g. press the job's cancel button); install{real_sleep
= true} makes dt.control.sleep really wait (for the end-to-end spec).
------------------------------------------------------------------------------]]

local standin = {}

local function record(list, value)
	list[#list + 1] = value
	return value
end

local function tag(name)
	return { name = name }
end

-- A photo in the library. Fields as darktable's dt_lua_image_t: path (folder), filename, rating
-- (-1..5), red/yellow/green/blue/purple, is_raw; tags is a list of tag names.
function standin.image(fields)
	local image = {
		path = fields.path, filename = fields.filename, rating = fields.rating or 0, is_raw = fields.is_raw or false,
		red = fields.red or false, yellow = fields.yellow or false, green = fields.green or false,
		blue = fields.blue or false, purple = fields.purple or false, tags = {},
	}
	for _, name in ipairs(fields.tags or {}) do
		image.tags[#image.tags + 1] = tag(name)
	end
	function image.group_with(self, leader)
		record(standin.groups, { image = self, leader = leader })
	end
	return image
end

local function widget_constructor(kind)
	return function(fields)
		local widget = fields or {}
		widget.kind = kind
		if kind == "combobox" and widget.selected == nil and widget[1] ~= nil then
			widget.selected = 1
		end
		setmetatable(widget, {
			__index = function(self, key)
				if key == "value" and kind == "combobox" then
					return rawget(self, rawget(self, "selected") or 1)
				end
			end,
		})
		return record(standin.widgets, widget)
	end
end

function standin.install(options)
	options = options or {}
	for _, list in ipairs({ "prints", "errors", "logs", "destroyed", "imports", "groups", "attached", "jobs",
		"sleeps", "api_checks", "widgets" }) do
		standin[list] = {}
	end
	standin.storages, standin.prefs, standin.registered = {}, {}, {}
	for key, value in pairs(options.prefs or {}) do
		standin.prefs[key] = value
	end
	standin.on_sleep = nil

	local dt = {
		configuration = {
			running_os = options.running_os or "linux", api_version_string = "9.4.0", version = "5.0.0",
			config_dir = options.config_dir or "/tmp",
		},
		gettext = {
			gettext = function(s) return s end,
			dgettext = function(_, s) return s end,
			bindtextdomain = function() end,
		},
		print = function(message) record(standin.prints, message) end,
		print_error = function(message) record(standin.errors, message) end,
		print_log = function(message) record(standin.logs, message) end,
		print_toast = function(message) record(standin.prints, message) end,
		new_widget = widget_constructor,
		control = {
			ending = false,
			sleep = function(ms)
				record(standin.sleeps, ms)
				if standin.on_sleep then
					standin.on_sleep(ms)
				end
				if options.real_sleep then
					os.execute(string.format("sleep %.3f", ms / 1000))
				end
			end,
		},
		gui = {
			create_job = function(text, progress_bar, cancel_callback)
				return record(standin.jobs, { text = text, percent = 0, valid = true, progress_bar = progress_bar,
					cancel_callback = cancel_callback })
			end,
		},
	}

	dt.preferences = {
		register = function(script, name, kind, label, tooltip, default, ...)
			standin.registered[script .. "/" .. name] = { kind = kind, label = label, tooltip = tooltip,
				default = default, extra = { ... } }
		end,
		read = function(script, name, kind)
			local key = script .. "/" .. name
			if standin.prefs[key] ~= nil then
				return standin.prefs[key]
			elseif standin.registered[key] then
				return standin.registered[key].default
			end
			return ({ string = "", integer = 0, float = 0, bool = false })[kind]
		end,
		write = function(script, name, _, value)
			standin.prefs[script .. "/" .. name] = value
		end,
	}

	function dt.register_storage(plugin_name, name, store, finalize, supported, initialize, widget)
		standin.storages[plugin_name] = { plugin_name = plugin_name, name = name, store = store,
			finalize = finalize, supported = supported, initialize = initialize, widget = widget }
	end

	function dt.destroy_storage(plugin_name)
		standin.storages[plugin_name] = nil
		record(standin.destroyed, plugin_name)
	end

	-- Like darktable: importing a file that is not there is an error; the new image is a photo.
	dt.database = {
		import = function(path)
			local f = io.open(path, "rb")
			if not f then
				error("error while importing " .. path)
			end
			f:close()
			local folder, filename = path:match("^(.*)[/\\]([^/\\]+)$")
			return record(standin.imports, standin.image{ path = folder, filename = filename })
		end,
	}

	dt.tags = {
		get_tags = function(image)
			local copy = {}
			for i, t in ipairs(image.tags) do
				copy[i] = t
			end
			return copy
		end,
		attach = function(t, image)
			record(standin.attached, { tag = t, image = image })
			image.tags[#image.tags + 1] = t
		end,
	}

	local du = {
		check_min_api_version = function(version, script)
			record(standin.api_checks, { version = version, script = script })
		end,
	}

	package.loaded["darktable"], package.loaded["lib/dtutils"] = nil, nil
	package.preload["darktable"] = function() return dt end
	package.preload["lib/dtutils"] = function() return du end
	standin.dt = dt
	return dt
end

-- A TIFF format object as darktable hands it to a storage.
function standin.format(fields)
	local format = { plugin_name = "tiff", extension = "tif", name = "TIFF", bpp = 16 }
	for key, value in pairs(fields or {}) do
		format[key] = value
	end
	return format
end

--[[ Run an export as darktable does (control/jobs.c): initialize may narrow the list, each photo is
rendered to <tmp>/<name>.tif and handed to store, then finalize gets image -> file.
options.render(image) -> path of the rendered file (default: a small file in options.tmp);
options.format: the format object. Returns the images initialize let through. ]]
function standin.export(images, options)
	options = options or {}
	local storage = assert(standin.storages.truepix, "the truepix storage is not registered")
	local format = options.format or standin.format()
	local extra = {}
	local list = images
	if storage.initialize then
		list = storage.initialize(storage, format, images, true, extra) or images
	end
	local files = {}
	for i, image in ipairs(list) do
		local file
		if options.render then
			file = options.render(image)
		else
			file = options.tmp .. "/" .. image.filename:gsub("%.[^.]*$", "") .. ".tif"
			local f = assert(io.open(file, "wb"))
			f:write("rendered " .. image.path .. "/" .. image.filename)
			f:close()
		end
		files[image] = file
		storage.store(storage, image, format, file, i, #list, true, extra)
	end
	storage.finalize(storage, files, extra)
	return list, extra
end

return standin
