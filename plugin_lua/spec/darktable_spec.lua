-- The darktable script (plugin_lua/darktable/truepix.lua) with a stand-in darktable and a fake
-- command runner that answers curl's command lines like the daemon does (spec/support/fake_daemon.lua).
-- Run: busted --lua=lua5.4 plugin_lua/spec/darktable_spec.lua

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
package.path = here .. "/../truepix.lrplugin/?.lua;" .. here .. "/support/?.lua;" .. package.path
local json = require "json"
local fake_daemon = require "fake_daemon"
local standin = dofile(here .. "/support/darktable_standin.lua")
local files = dofile(here .. "/support/files.lua")
local SCRIPT = here .. "/../darktable/truepix.lua"

local TOKEN = "secret-token-5f2d8c"
local PORT = 48999
local NOT_RUNNING = "truepix is not running on 127.0.0.1:48999 — start it with `truepix run` (or from its tray icon)"

local q, read, write, exists, entries = files.quote, files.read, files.write, files.exists, files.list

-- POSIX shell words: '...' quoting, backslash escapes, blanks between words.
local function shell_words(cmd)
	local words, word, i = {}, nil, 1
	while i <= #cmd do
		local c = cmd:sub(i, i)
		if c == "'" then
			local close = assert(cmd:find("'", i + 1, true), "unbalanced quote in " .. cmd)
			word, i = (word or "") .. cmd:sub(i + 1, close - 1), close + 1
		elseif c == "\\" then
			word, i = (word or "") .. cmd:sub(i + 1, i + 1), i + 2
		elseif c:match("%s") then
			words[#words + 1], word, i = word, nil, i + 1
		else
			word, i = (word or "") .. c, i + 1
		end
	end
	words[#words + 1] = word
	return words
end

describe("the darktable script", function()
	local tmp, photos, render_dir, token_file
	local daemon, shell, script_data, M

	-- Answers curl command lines from the fake daemon; runs every other command for real.
	local function runner(cmd)
		shell.commands[#shell.commands + 1] = cmd
		if not cmd:match("^curl ") then
			return shell.real_run(cmd)
		end
		if shell.down then
			return "curl: (7) Failed to connect to 127.0.0.1 port 48999 after 0 ms: Couldn't connect to server\n\n000", 7
		end
		local words = shell_words(cmd)
		local method, url, headers, body = "GET", nil, {}, nil
		for i, word in ipairs(words) do
			if word == "-X" then
				method = words[i + 1]
			elseif word == "-H" then
				local file = words[i + 1]:match("^@(.*)$")
				shell.header_files[#shell.header_files + 1] = file
				for line in assert(read(file), "header file missing"):gmatch("[^\r\n]+") do
					local field, value = line:match("^([^:]+):%s*(.*)$")
					headers[#headers + 1] = { field = field, value = value }
				end
			elseif word == "--data-binary" then
				body = read(words[i + 1]:match("^@(.*)$"))
			elseif word:match("^http://") then
				url = word
			end
		end
		if shell.intercept then
			local text = shell.intercept(method, url, body and json.decode(body))
			if text then
				return text, 0
			end
		end
		if method == "POST" and body then
			for _, path in ipairs(json.decode(body).paths or {}) do
				daemon.failures[path] = shell.fail[path:match("([^/]*)$")]
			end
		end
		local text, meta = daemon.handler(method, url, body, headers)
		return text .. "\n" .. meta.status, 0
	end

	local function load_script()
		-- the script asks for the recipes while it loads: send those curl calls to the fake too
		local popen = io.popen
		rawset(io, "popen", function(cmd)
			local out, code = runner((cmd:gsub(" 2>&1$", "")))
			return { read = function() return out end, close = function() return code == 0 or nil, "exit", code end }
		end)
		local ok, result = pcall(dofile, SCRIPT)
		rawset(io, "popen", popen)
		assert(ok, result)
		script_data, M = result, result.internals
		shell.real_run, M.run = M.run, runner
	end

	local function photo(filename, fields)
		fields = fields or {}
		fields.path, fields.filename = fields.path or photos, filename
		return standin.image(fields)
	end

	local function posts(pattern)
		return daemon.posts(pattern or "^/v1/jobs$")
	end

	before_each(function()
		tmp = os.tmpname()
		os.remove(tmp)
		photos = tmp .. "/My Photos/it's \"here\""
		render_dir = tmp .. "/darktable tmp"
		token_file = tmp .. "/token file"
		assert(os.execute("mkdir -p " .. q(photos) .. " " .. q(render_dir)))
		write(token_file, TOKEN .. "\n")
		daemon = fake_daemon.new{
			token = TOKEN,
			recipes = {
				{ name = "upscale", input = "rgb", format = "tiff", bits = 16, suffix = "-truepix-x2" },
				{ name = "denoise-raw", input = "raw", format = "tiff", bits = 16, suffix = "-truepix-denoise" },
			},
		}
		shell = { commands = {}, header_files = {}, fail = {} }
		standin.install{ prefs = { ["truepix/port"] = PORT, ["truepix/token_file"] = token_file } }
		load_script()
	end)

	after_each(function()
		os.execute("rm -rf " .. q(tmp))
	end)

	it("registers the storage, its preferences and its recipe list like lua-scripts do", function()
		assert.are.same({ { version = "7.0.0", script = "truepix" } }, standin.api_checks)
		local storage = standin.storages.truepix
		assert.are.equal("truepix", storage.name)
		for _, callback in ipairs({ "store", "finalize", "supported", "initialize" }) do
			assert.is_function(storage[callback])
		end
		assert.are.equal("box", storage.widget.kind)
		for _, field in ipairs({ "name", "purpose", "author" }) do
			assert.is_string(script_data.metadata[field])
		end
		assert.is_function(script_data.destroy)
		assert.are.equal("integer", standin.registered["truepix/port"].kind)
		assert.are.equal(0, standin.registered["truepix/port"].default)
		assert.are.equal("string", standin.registered["truepix/token_file"].kind)
		assert.are.equal("", standin.registered["truepix/token_file"].default)
		-- the combobox holds the daemon's recipes, the remembered one selected
		local combo = M.recipe_combo
		assert.are.same({ "upscale", "denoise-raw" }, { combo[1], combo[2] })
		assert.are.equal(2, #combo)
		assert.are.equal("upscale", combo.value)
		assert.is_true(storage.supported(storage, standin.format()))
		assert.is_false(storage.supported(storage, standin.format{ plugin_name = "jpeg", extension = "jpg" }))
	end)

	it("falls back to the recipe 'upscale' when the daemon does not answer at load", function()
		shell.down = true
		standin.install{ prefs = { ["truepix/port"] = PORT, ["truepix/token_file"] = token_file } }
		load_script()
		assert.are.equal("upscale", M.recipe_combo.value)
		assert.are.same({}, standin.prints)
	end)

	it("rgb recipe: submits the rendered TIFF, imports the result beside the original with its metadata", function()
		local raw = photo("IMG_0042.CR2", { rating = 4, red = true, purple = true, is_raw = true,
			tags = { "people|ana", "darktable|format|cr2", "places|lisbon" } })
		local format = standin.format{ bpp = 8 }
		standin.export({ raw }, { tmp = render_dir, format = format })

		assert.are.equal(8, format.bpp) -- darktable gives the storage a copy: it leaves the setting alone
		local submits = posts()
		assert.are.equal(1, #submits)
		local body = submits[1].body
		assert.are.equal("upscale", body.recipe)
		assert.are.equal(photos, body.output_dir) -- the folder of the ORIGINAL photo
		assert.are.equal(1, #body.paths)
		assert.are.equal(render_dir .. "/", body.paths[1]:sub(1, #render_dir + 1))
		assert.truthy(body.paths[1]:match("/IMG_0042%.tif$"))

		local output = photos .. "/IMG_0042-truepix-x2.tif"
		assert.is_true(exists(output))
		assert.are.equal(1, #standin.imports)
		local new = standin.imports[1]
		assert.are.same({ photos, "IMG_0042-truepix-x2.tif" }, { new.path, new.filename })
		assert.are.equal(1, #standin.groups)
		assert.are.equal(new, standin.groups[1].image)
		assert.are.equal(raw, standin.groups[1].leader)
		assert.are.equal(4, new.rating)
		assert.are.same({ true, false, false, false, true }, { new.red, new.yellow, new.green, new.blue, new.purple })
		local attached = {}
		for _, a in ipairs(standin.attached) do
			assert.are.equal(new, a.image)
			attached[#attached + 1] = a.tag.name
		end
		assert.are.same({ "people|ana", "places|lisbon" }, attached)

		assert.are.same({}, entries(render_dir)) -- rendered TIFF and its private folder are gone
		assert.are.equal(1, #standin.jobs)
		assert.is_false(standin.jobs[1].valid)
		assert.are.equal(1, standin.jobs[1].percent)
		assert.are.same({ "truepix: 1 of 1 photos enhanced with upscale (the TIFFs were 8 bit: choose 16 bit in "
			.. "the export module for best results)" }, standin.prints)
	end)

	it("keeps two photos of the same name apart (darktable renders both to <tmp>/<name>.tif)", function()
		local first = photo("IMG_0001.CR2")
		local other_card = tmp .. "/card 2"
		assert(os.execute("mkdir -p " .. q(other_card)))
		local second = photo("IMG_0001.CR2", { path = other_card })
		standin.export({ first, second }, { tmp = render_dir })
		local submits = posts()
		assert.are.equal(2, #submits)
		assert.are_not.equal(submits[1].body.paths[1], submits[2].body.paths[1])
		assert.are.equal(photos, submits[1].body.output_dir)
		assert.are.equal(other_card, submits[2].body.output_dir)
		assert.is_true(exists(photos .. "/IMG_0001-truepix-x2.tif"))
		assert.is_true(exists(other_card .. "/IMG_0001-truepix-x2.tif"))
		assert.are.equal(2, #standin.imports)
		assert.are.same({}, entries(render_dir))
	end)

	it("raw recipe: submits the original RAW and says which photos are not RAW", function()
		local combo = M.recipe_combo
		combo.selected = 2
		combo.changed_callback(combo)
		assert.are.equal("denoise-raw", standin.prefs["truepix/recipe"])

		local nef = photo("DSC_0001.NEF", { is_raw = true, rating = 2 })
		local jpg = photo("DSC_0002.JPG", { is_raw = false })
		local exported = standin.export({ nef, jpg }, { tmp = render_dir })

		assert.are.same({ nef }, exported) -- initialize let only the RAW through
		local submits = posts()
		assert.are.equal(1, #submits)
		assert.are.same({ photos .. "/DSC_0001.NEF" }, submits[1].body.paths)
		assert.are.equal("denoise-raw", submits[1].body.recipe)
		assert.are.equal(photos, submits[1].body.output_dir)
		assert.are.equal(1, #standin.imports)
		assert.are.equal("DSC_0001-truepix-denoise.tif", standin.imports[1].filename)
		assert.are.equal(nef, standin.groups[1].leader)
		assert.are.same({
			"truepix: DSC_0002.JPG: recipe 'denoise-raw' works on camera RAW files and this photo is not one",
			"truepix: 1 of 2 photos enhanced with denoise-raw, 1 failed",
		}, standin.prints)
		assert.are.same({}, entries(render_dir))
	end)

	it("daemon not running: one helpful message, nothing exported, no Lua error", function()
		shell.down = true
		local exported = standin.export({ photo("a.CR2"), photo("b.CR2") }, { tmp = render_dir })
		assert.are.same({}, exported)
		assert.are.same({ NOT_RUNNING }, standin.prints)
		assert.are.same({}, standin.jobs)
		assert.are.same({}, standin.imports)
	end)

	it("a wrong token (401): the message names the token file", function()
		write(token_file, "not-the-token\n")
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		assert.are.equal(1, #standin.prints)
		assert.truthy(standin.prints[1]:find("refused the token from " .. token_file, 1, true))
		assert.truthy(standin.prints[1]:find("missing or wrong token", 1, true)) -- the daemon's own words
		assert.are.same({}, posts())
	end)

	it("a missing token file: the message names it", function()
		standin.prefs["truepix/token_file"] = tmp .. "/nowhere/token"
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		assert.are.equal(1, #standin.prints)
		assert.truthy(standin.prints[1]:find("the token file " .. tmp .. "/nowhere/token cannot be read", 1, true))
	end)

	it("a malformed answer is reported as such", function()
		shell.intercept = function(method, url)
			if method == "GET" and url:match("/v1/health$") then
				return "<html>proxy error</html>\n200"
			end
		end
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		assert.are.same({ "truepix sent a malformed answer: <html>proxy error</html>" }, standin.prints)
	end)

	it("a failed job: names the photo and the reason, the others complete", function()
		shell.fail["IMG_2.tif"] = "decode: the file is truncated"
		standin.export({ photo("IMG_1.CR2"), photo("IMG_2.CR2"), photo("IMG_3.CR2") }, { tmp = render_dir })
		assert.are.same({
			"truepix: IMG_2.CR2: decode: the file is truncated",
			"truepix: 2 of 3 photos enhanced with upscale, 1 failed",
		}, standin.prints)
		assert.are.same({ "truepix: IMG_2.CR2: decode: the file is truncated" }, standin.errors)
		assert.are.same({ "IMG_1-truepix-x2.tif", "IMG_3-truepix-x2.tif" },
			{ standin.imports[1].filename, standin.imports[2].filename })
		assert.are.same({}, entries(render_dir))
	end)

	it("a refused submit (HTTP 400) shows the daemon's message for that photo", function()
		shell.intercept = function(method, url)
			if method == "POST" and url:match("/v1/jobs$") then
				return json.encode({ error = { status = 400, message = "paths[0]: not a photo truepix reads" } }) ..
					"\n400"
			end
		end
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		assert.are.same({
			"truepix: a.CR2: truepix answered HTTP 400: paths[0]: not a photo truepix reads",
			"truepix: 0 of 1 photos enhanced with upscale, 1 failed",
		}, standin.prints)
	end)

	it("cancel from the progress job reaches the daemon", function()
		daemon.stepsToDone = 1000
		standin.on_sleep = function()
			local job = standin.jobs[1]
			if job.valid and not job.cancelled then
				job.cancelled = true
				job.cancel_callback(job)
			end
		end
		standin.export({ photo("a.CR2"), photo("b.CR2") }, { tmp = render_dir })
		local cancels = posts("^/v1/jobs/%d+/cancel$")
		assert.are.same({ "/v1/jobs/1/cancel", "/v1/jobs/2/cancel" }, { cancels[1].path, cancels[2].path })
		assert.are.equal(2, #cancels)
		assert.are.same({}, standin.imports)
		assert.are.same({ "truepix: 0 of 2 photos enhanced with upscale, 2 cancelled" }, standin.prints)
		assert.is_false(standin.jobs[1].valid)
		assert.are.same({}, entries(render_dir))
	end)

	it("polls about twice a second while the daemon works", function()
		daemon.stepsToDone = 4
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		assert.is_true(#standin.sleeps >= 3)
		for _, ms in ipairs(standin.sleeps) do
			assert.are.equal(500, ms)
		end
	end)

	it("the token never appears on a command line; the header files are removed", function()
		standin.export({ photo("a.CR2"), photo("b.CR2") }, { tmp = render_dir })
		assert.is_true(#shell.header_files >= 4) -- health, recipes, 2 submits, polls
		for _, cmd in ipairs(shell.commands) do
			assert.is_nil(cmd:find(TOKEN, 1, true), cmd)
		end
		for _, file in ipairs(shell.header_files) do
			assert.is_false(exists(file), file)
		end
		assert.are.equal(2, #standin.imports)
	end)

	it("paths with spaces and quotes survive the shell quoting", function()
		for _, s in ipairs({ "plain", "with space", "it's", 'say "hi"', "$HOME `id` \\ ; | & * ?", "café ☕" }) do
			local out, code = shell.real_run("printf '%s' " .. M.quote(s))
			assert.are.same({ s, 0 }, { out, code })
		end
		M.os = "windows"
		assert.are.equal('"C:\\Users\\Ana Lu\\Pictures\\a b.tif"', M.quote("C:\\Users\\Ana Lu\\Pictures\\a b.tif"))
		M.os = "linux"

		local odd = photo("Ana's \"best\" shot.CR2")
		standin.export({ odd }, { tmp = render_dir })
		local body = posts()[1].body
		assert.are.equal(photos, body.output_dir)
		assert.truthy(body.paths[1]:find("/Ana's \"best\" shot.tif", 1, true))
		assert.is_true(exists(photos .. "/Ana's \"best\" shot-truepix-x2.tif"))
		assert.are.equal("Ana's \"best\" shot-truepix-x2.tif", standin.imports[1].filename)
		assert.are.same({}, entries(render_dir))
	end)

	it("submits a finished duplicate again (force) when its result is no longer there", function()
		local calls = 0
		shell.intercept = function(method, url, body)
			if method == "POST" and url:match("/v1/jobs$") then
				calls = calls + 1
				if calls == 1 then
					return json.encode({ jobs = { { id = 7, state = "done", duplicate = true,
						outputs = { photos .. "/deleted-truepix-x2.tif" }, source = body.paths[1] } } }) .. "\n201"
				end
			end
		end
		standin.export({ photo("a.CR2") }, { tmp = render_dir })
		local submits = posts()
		assert.are.equal(1, #submits) -- the first went to the intercept
		assert.is_true(submits[1].body.force)
		assert.are.equal("a-truepix-x2.tif", standin.imports[1].filename)
	end)

	it("finds the port in the daemon's state file and the token in the platform's folder", function()
		local env = { HOME = "/home/ana", XDG_STATE_HOME = tmp .. "/state", XDG_CONFIG_HOME = tmp .. "/config" }
		local getenv = os.getenv
		rawset(os, "getenv", function(name) return env[name] end)
		local ok, err = pcall(function()
			standin.prefs["truepix/port"], standin.prefs["truepix/token_file"] = 0, ""
			assert.are.equal(48620, M.settings().port) -- no state file: the default port
			assert(os.execute("mkdir -p " .. q(tmp .. "/state/truepix") .. " " .. q(tmp .. "/config/truepix")))
			write(tmp .. "/state/truepix/daemon.json", '{"pid": 4242, "port": 51234}')
			write(tmp .. "/config/truepix/token", TOKEN .. "\n")
			local conn = M.settings()
			assert.are.same({ 51234, tmp .. "/config/truepix/token", TOKEN }, { conn.port, conn.token_file, conn.token })
			env.XDG_STATE_HOME, env.XDG_CONFIG_HOME = nil, nil
			assert.are.equal("/home/ana/.local/state/truepix", M.user_dir("state"))
			assert.are.equal("/home/ana/.config/truepix", M.user_dir("config"))
			M.os = "macos"
			assert.are.equal("/home/ana/Library/Application Support/truepix", M.user_dir("config"))
			assert.are.equal("/home/ana/Library/Application Support/truepix", M.user_dir("state"))
			M.os, env.LOCALAPPDATA = "windows", "C:\\Users\\ana\\AppData\\Local"
			assert.are.equal("C:\\Users\\ana\\AppData\\Local\\truepix", M.user_dir("config"))
			assert.are.equal("C:\\Users\\ana\\AppData\\Local\\truepix", M.user_dir("state"))
		end)
		rawset(os, "getenv", getenv)
		M.os = "linux"
		assert(ok, err)
	end)

	it("destroy unregisters the storage", function()
		script_data.destroy()
		assert.are.same({ "truepix" }, standin.destroyed)
		assert.is_nil(standin.storages.truepix)
	end)
end)
