--[[
	drive.lua - run inside a real darktable (`darktable --luacmd 'dofile("drive.lua")'`) with truepix.lua
	loaded from luarc: import one photo, export it through the "truepix" storage by pressing the export
	module's button with dt.gui.action, wait for the enhanced photo to be imported, and write what it
	found to $TRUEPIX_DT_RESULT as key=value lines, then quit darktable.

	Environment: TRUEPIX_DT_IMAGE (the photo), TRUEPIX_DT_RESULT (the report), TRUEPIX_DT_WAIT (seconds),
	TRUEPIX_DT_EXT (the result's extension, default .tif).
]]

local dt = require "darktable"

local lines = {}
-- Each line also goes at once to $TRUEPIX_DT_RESULT.progress, so a run that hangs shows how far it got.
local progress = io.open(assert(os.getenv("TRUEPIX_DT_RESULT")) .. ".progress", "w")
local function put(key, value)
	lines[#lines + 1] = key .. "=" .. tostring(value):gsub("\n", " ")
	if progress then
		progress:write(lines[#lines], "\n")
		progress:flush()
	end
end
put("driver", "started")

local function find_imported(name)
	for i = 1, #dt.database do
		local image = dt.database[i]
		if image.filename == name then
			return image
		end
	end
end

-- Keep what the script tells the user (its summary and problems) for the report.
local printed = {}
local real_print = dt.print
local patched = pcall(function()
	dt.print = function(message)
		printed[#printed + 1] = tostring(message)
		return real_print(message)
	end
end)

-- The image's tags without darktable's own (darktable|...), sorted, comma-separated.
local function user_tags(image)
	local tags = {}
	for _, tag in ipairs(dt.tags.get_tags(image)) do
		if not tag.name:match("^darktable|") then
			tags[#tags + 1] = tag.name
		end
	end
	table.sort(tags)
	return table.concat(tags, ",")
end

local function drive()
	local source_file = assert(os.getenv("TRUEPIX_DT_IMAGE"), "TRUEPIX_DT_IMAGE is not set")
	local wait = tonumber(os.getenv("TRUEPIX_DT_WAIT") or "40")
	put("api", dt.configuration.api_version_string)
	put("port_pref", dt.preferences.read("truepix", "port", "integer"))
	put("token_file_pref", dt.preferences.read("truepix", "token_file", "string"))
	put("storage_pref", dt.preferences.read("darktable", "plugins/lighttable/export/storage_name", "string"))
	put("format_pref", dt.preferences.read("darktable", "plugins/lighttable/export/format_name", "string"))

	local source = dt.database.import(source_file)
	put("source_id", source.id)
	source.rating = 3
	source.red = true
	dt.tags.attach(dt.tags.create("truepix test|keep me"), source)

	dt.gui.selection({ source })
	put("selected", #dt.gui.selection())
	put("action", dt.gui.action("lib/export/export", 0, "", "", 1.0))

	local stem = source.filename:match("^(.*)%.[^.]*$") or source.filename
	local name = stem .. (os.getenv("TRUEPIX_DT_SUFFIX") or "-truepix-x2") .. (os.getenv("TRUEPIX_DT_EXT") or ".tif")
	local result
	local deadline = os.time() + wait
	repeat
		dt.control.sleep(250)
		result = find_imported(name)
	until result or os.time() > deadline
	put("result_found", result ~= nil)
	if not result then
		return
	end
	dt.control.sleep(500) -- finalize goes on with grouping and metadata after the import
	put("result_path", result.path .. "/" .. result.filename)
	put("result_group_leader", result.group_leader.id)
	local members = {}
	for _, member in ipairs(source:get_group_members()) do
		members[#members + 1] = member.id
	end
	table.sort(members)
	put("source_group_members", table.concat(members, ","))
	put("result_id", result.id)
	put("result_rating", result.rating)
	put("result_red", result.red)
	put("result_tags", user_tags(result))
	put("source_tags", user_tags(source))
end

local ok, err = pcall(drive)
put("ok", ok)
put("print_patched", patched)
put("printed", table.concat(printed, " | "))
if not ok then
	put("error", err)
end
local f = assert(io.open(assert(os.getenv("TRUEPIX_DT_RESULT")), "w"))
f:write(table.concat(lines, "\n"), "\n")
f:close()
if progress then
	progress:write("quitting\n")
	progress:close()
end
dt.gui.action("global/quit", 0, "", "", 1.0)
