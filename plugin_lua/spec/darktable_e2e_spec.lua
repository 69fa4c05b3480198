-- The darktable script end to end: the stand-in darktable, but real curl against a real truepix
-- daemon. tests/test_darktable_script.py starts the daemon and sets:
--   TRUEPIX_E2E_PORT          the daemon's port on 127.0.0.1
--   TRUEPIX_E2E_TOKEN_FILE    its token file
--   TRUEPIX_E2E_TIFF          a 16-bit TIFF standing in for what darktable renders
--   TRUEPIX_E2E_ORIGINAL_DIR  the folder of the "original" photo, where the result must appear
-- Without them the spec is pending.

local here = debug.getinfo(1, "S").source:match("^@(.*)[/\\]") or "."
local standin = dofile(here .. "/support/darktable_standin.lua")
local files = dofile(here .. "/support/files.lua")
local SCRIPT = here .. "/../darktable/truepix.lua"

local env = {
	port = os.getenv("TRUEPIX_E2E_PORT"),
	token_file = os.getenv("TRUEPIX_E2E_TOKEN_FILE"),
	tiff = os.getenv("TRUEPIX_E2E_TIFF"),
	original_dir = os.getenv("TRUEPIX_E2E_ORIGINAL_DIR"),
}

local copy, exists = files.copy, files.exists

describe("the darktable script against a real truepix daemon", function()
	if not (env.port and env.token_file and env.tiff and env.original_dir) then
		pending("set TRUEPIX_E2E_PORT, TRUEPIX_E2E_TOKEN_FILE, TRUEPIX_E2E_TIFF and TRUEPIX_E2E_ORIGINAL_DIR " ..
			"(tests/test_darktable_script.py does)")
		return
	end

	it("enhances the rendered TIFF, writes the result beside the original, imports and groups it", function()
		standin.install{
			real_sleep = true,
			prefs = { ["truepix/port"] = tonumber(env.port), ["truepix/token_file"] = env.token_file },
		}
		local script_data = dofile(SCRIPT)
		assert.are.equal("upscale", script_data.internals.recipe_combo.value) -- the list came from the daemon

		-- darktable renders <tmp>/<name of the original>.tif: a copy of the test TIFF in a folder of its own
		local stem = env.tiff:match("([^/\\]+)%.[^./\\]*$")
		local render_dir = os.tmpname()
		os.remove(render_dir)
		assert(os.execute("mkdir " .. render_dir))
		local rendered = render_dir .. "/" .. stem .. ".tif"
		copy(env.tiff, rendered)
		local original = standin.image{ path = env.original_dir, filename = stem .. ".NEF", is_raw = true,
			rating = 3, green = true, tags = { "truepix|e2e", "darktable|format|nef" } }

		local exported = standin.export({ original }, { render = function() return rendered end })

		assert.are.same({ original }, exported)
		local output = env.original_dir .. "/" .. stem .. "-truepix-x2.tif"
		assert.is_true(exists(output), output)
		assert.are.same({ "truepix: 1 of 1 photos enhanced with upscale" }, standin.prints)
		assert.are.equal(1, #standin.imports)
		local new = standin.imports[1]
		assert.are.same({ env.original_dir, stem .. "-truepix-x2.tif" }, { new.path, new.filename })
		assert.are.equal(1, #standin.groups)
		assert.are.equal(new, standin.groups[1].image)
		assert.are.equal(original, standin.groups[1].leader)
		assert.are.equal(3, new.rating)
		assert.is_true(new.green)
		assert.are.equal(1, #standin.attached)
		assert.are.equal("truepix|e2e", standin.attached[1].tag.name)
		assert.is_false(exists(rendered)) -- the temporary render is cleaned up
		assert.is_true(os.remove(render_dir)) -- empty: the private folder the script used is gone too
	end)

	it("a wrong token: the daemon's 401 becomes a message naming the token file", function()
		local wrong = os.tmpname()
		local f = assert(io.open(wrong, "w"))
		f:write("not-the-token\n")
		f:close()
		standin.install{ prefs = { ["truepix/port"] = tonumber(env.port), ["truepix/token_file"] = wrong } }
		dofile(SCRIPT)
		local exported = standin.export({ standin.image{ path = env.original_dir, filename = "x.NEF" } },
			{ render = function() error("nothing may be rendered") end })
		os.remove(wrong)
		assert.are.same({}, exported)
		assert.are.equal(1, #standin.prints)
		assert.truthy(standin.prints[1]:find("refused the token from " .. wrong .. ": wrong token", 1, true))
	end)

	it("nothing listening on the port: real curl cannot connect, one helpful message", function()
		standin.install{ prefs = { ["truepix/port"] = 1, ["truepix/token_file"] = env.token_file } }
		dofile(SCRIPT)
		local exported = standin.export({ standin.image{ path = env.original_dir, filename = "x.NEF" } },
			{ render = function() error("nothing may be rendered") end })
		assert.are.same({}, exported)
		assert.are.same({ "truepix is not running on 127.0.0.1:1 — start it with `truepix run` (or from its tray icon)" },
			standin.prints)
	end)
end)
