-- luacheck configuration for truepix's Lua sides: `luacheck plugin_lua` from the repository root.
max_line_length = 120
codes = true

-- Lightroom Classic runs Lua 5.1 and gives plug-ins these globals.
files["plugin_lua/truepix.lrplugin"] = {
	std = "lua51",
	read_globals = { "import", "_PLUGIN", "WIN_ENV", "MAC_ENV", "LOC" },
}

-- darktable 4.x/5.x embeds Lua 5.4; everything else comes through require.
files["plugin_lua/darktable"] = {
	std = "lua54",
}

-- busted specs: the Lightroom ones run under lua5.1, the darktable ones under lua5.4.
files["plugin_lua/spec"] = {
	std = "max+busted",
}
files["plugin_lua/spec/support/lightroom_standin.lua"] = {
	std = "lua51",
	globals = { "import", "_PLUGIN", "WIN_ENV", "MAC_ENV", "LOC" },
}

-- The driver run inside a real darktable by tests/test_darktable_real.py.
files["tests/darktable_real"] = {
	std = "lua54",
}
