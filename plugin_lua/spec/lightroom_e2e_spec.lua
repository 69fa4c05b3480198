-- End to end: the Lightroom plug-in against a real `truepix run`, no stand-in for the
-- network (LrHttp goes through LuaSocket to 127.0.0.1). tests/test_lightroom_plugin.py
-- starts the daemon and sets:
--   TRUEPIX_E2E_PORT, TRUEPIX_E2E_TOKEN_FILE   where the daemon listens, its token file
--   TRUEPIX_E2E_TIFF                           a real 16-bit TIFF: what Lightroom renders
--   TRUEPIX_E2E_ORIGINAL_DIR                   the folder of the "original" photo
--   TRUEPIX_E2E_RESULT                         the spec writes the enhanced file's path here

local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
package.path = here .. '?.lua;' .. package.path

local lr = require 'support.lightroom_standin'
local files = require 'support.files'
local copy = files.copy

local env = {
	port = os.getenv('TRUEPIX_E2E_PORT'),
	token = os.getenv('TRUEPIX_E2E_TOKEN_FILE'),
	tiff = os.getenv('TRUEPIX_E2E_TIFF'),
	originals = os.getenv('TRUEPIX_E2E_ORIGINAL_DIR'),
	result = os.getenv('TRUEPIX_E2E_RESULT'),
}

local function freePortNobodyListensOn()
	local socket = require 'socket'
	local server = assert(socket.bind('127.0.0.1', 0))
	local _, port = server:getsockname()
	server:close()
	return tonumber(port)
end

describe('the Lightroom plug-in with a real truepix daemon', function()
	if not (env.port and env.token and env.tiff and env.originals) then
		pending('run by tests/test_lightroom_plugin.py, which starts a daemon')
		return
	end

	local renders

	before_each(function()
		renders = files.tempFolder()
		lr.install { tempDir = renders, realSleep = true }
		lr.useRealHttp()
		lr.prefs.port = tonumber(env.port)
		lr.prefs.tokenPath = env.token
		-- "Rendering" copies the real TIFF the test made, as Lightroom would write it.
		lr.render = function(destination)
			copy(env.tiff, destination)
		end
	end)

	after_each(function()
		files.remove(renders)
	end)

	it('exports, gets the enhanced TIFF beside the original and stacks it above', function()
		local originalPath = env.originals .. '/IMG_2041.tif'
		copy(env.tiff, originalPath)
		local photo = lr.photo { path = originalPath, fileFormat = 'TIFF', rating = 5, keywords = { 'e2e' } }
		lr.catalog.photos = { photo }
		local provider = require 'TruepixExportServiceProvider'
		local context = lr.exportContext({ photo }, { truepix_recipe = 'upscale' })

		provider.processRenderedPhotos(nil, context)

		assert.are.same({}, lr.dialogs)
		local added = lr.find('addPhoto')
		assert.are.equal(1, #added)
		assert.are.equal(env.originals .. '/IMG_2041-truepix-x2.tif', added[1].path)
		assert.are.equal(photo, added[1].stackWith)
		assert.are.equal('above', added[1].position)
		assert.are.equal(5, added[1].photo.meta.rating)
		assert.are.equal('e2e', added[1].photo.keywords[1].name)
		local f = assert(io.open(added[1].path, 'rb'))
		assert.are.equal('II*\0', f:read(4)) -- a little-endian TIFF
		f:close()
		assert.is_nil(io.open(renders .. '/IMG_2041.tif', 'rb')) -- the render was cleaned up
		if env.result then
			local out = assert(io.open(env.result, 'w'))
			out:write(added[1].path)
			out:close()
		end
	end)

	it('as a post-process action, replaces the rendered TIFF with the enhanced one', function()
		local photo = lr.photo { path = env.originals .. '/IMG_2043.CR3', fileFormat = 'RAW' }
		local filter = require 'TruepixExportFilterProvider'
		local context = lr.filterContext({ photo }, { LR_format = 'TIFF', LR_export_bitDepth = 16,
			truepix_filterRecipe = 'upscale' })
		filter.postProcessRenderedPhotos({}, context)
		local done = lr.find('renditionIsDone')
		assert.are.equal(1, #done)
		assert.is_true(done[1].success, done[1].message)
		local rendered = renders .. '/IMG_2043.tif'
		local f = assert(io.open(rendered, 'rb'))
		assert.are.equal('II*\0', f:read(4))
		f:close()
		if env.result then
			local out = assert(io.open(env.result .. '.filter', 'w'))
			out:write(rendered)
			out:close()
			-- keep the replaced file for the test to measure: after_each removes the render folder
			copy(rendered, env.result .. '.filter.tif')
		end
	end)

	it('names the failed file and the reason the real daemon gives', function()
		local photo = lr.photo { path = env.originals .. '/broken.tif', fileFormat = 'TIFF' }
		lr.render = function(destination)
			local out = assert(io.open(destination, 'wb'))
			out:write('II*\0 this is not really a TIFF')
			out:close()
		end
		local provider = require 'TruepixExportServiceProvider'
		provider.processRenderedPhotos(nil, lr.exportContext({ photo }, { truepix_recipe = 'upscale' }))
		assert.are.equal(0, #lr.find('addPhoto'))
		assert.are.equal(1, #lr.dialogs)
		assert.is_truthy(lr.dialogs[1].text:find('broken.tif: ', 1, true))
	end)

	it('tells the photographer to start truepix when nothing listens on the port', function()
		lr.prefs.port = freePortNobodyListensOn()
		local photo = lr.photo { path = env.originals .. '/IMG_2042.tif', fileFormat = 'TIFF' }
		local provider = require 'TruepixExportServiceProvider'
		assert.has_no.errors(function()
			provider.processRenderedPhotos(nil, lr.exportContext({ photo }, { truepix_recipe = 'upscale' }))
		end)
		assert.are.equal(1, #lr.dialogs)
		assert.is_truthy(lr.dialogs[1].text:find('truepix is not running', 1, true))
		assert.is_truthy(lr.dialogs[1].text:find(('127.0.0.1:%d'):format(lr.prefs.port), 1, true))
	end)

	it('shows the running daemon in the Plug-in Manager', function()
		local info = require 'TruepixPluginInfoProvider'
		local props = {}
		info.startDialog(props)
		assert.is_true(props.daemonRunning)
		assert.is_truthy(props.daemonStatus:find('answers', 1, true))
	end)
end)
