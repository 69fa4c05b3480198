-- busted specs for the Lightroom Classic plug-in (run under lua5.1, like Lightroom):
--   cd plugin_lua && busted --lua=lua5.1 spec/lightroom_spec.lua
-- The Lr* modules are stand-ins that record calls (spec/support/lightroom_standin.lua);
-- the daemon is an in-process imitation of its HTTP API (spec/support/fake_daemon.lua).

local here = debug.getinfo(1, 'S').source:match('^@(.*/)') or './'
package.path = here .. '?.lua;' .. package.path

local lr = require 'support.lightroom_standin'
local fake_daemon = require 'support.fake_daemon'
local files = require 'support.files'

local tempFolder, writeFile, exists = files.tempFolder, files.write, files.exists

local function contains(haystack, needle)
	return type(haystack) == 'string' and haystack:find(needle, 1, true) ~= nil
end

describe('the truepix Lightroom plug-in', function()
	local daemon, folder, renders, provider

	before_each(function()
		folder = tempFolder()
		renders = tempFolder()
		lr.install { tempDir = renders }
		daemon = fake_daemon.new()
		lr.http.handler = daemon.handler
		lr.prefs.port = 48620
		lr.prefs.tokenPath = writeFile(folder .. '/token', 'secret\n')
		provider = require 'TruepixExportServiceProvider'
	end)

	after_each(function()
		files.remove(folder)
		files.remove(renders)
	end)

	local function original(name, fields)
		fields = fields or {}
		fields.path = folder .. '/' .. name
		writeFile(fields.path, 'raw bytes')
		local photo = lr.photo(fields)
		lr.catalog.photos[#lr.catalog.photos + 1] = photo
		return photo
	end

	local function export(photos, recipe)
		local context = lr.exportContext(photos, { truepix_recipe = recipe or 'upscale' })
		provider.processRenderedPhotos(nil, context)
		return context
	end

	describe('export service', function()
		it('sends the rendered 16-bit TIFF and stacks the result above its original', function()
			local photo = original('IMG_0001.CR3', { rating = 4, label = 'Red', pickStatus = 1,
				keywords = { 'heron', 'river' } })
			local context = export { photo }

			local submits = daemon.posts('^/v1/jobs$')
			assert.are.equal(1, #submits)
			local rendered = renders .. '/IMG_0001.tif'
			assert.are.same({ rendered }, submits[1].body.paths)
			assert.are.equal('upscale', submits[1].body.recipe)
			assert.are.equal(folder, submits[1].body.output_dir)

			local added = lr.find('addPhoto')
			assert.are.equal(1, #added)
			assert.are.equal(folder .. '/IMG_0001-truepix-x2.tif', added[1].path)
			assert.are.equal(photo, added[1].stackWith)
			assert.are.equal('above', added[1].position)

			local result = added[1].photo
			assert.are.equal(4, result.meta.rating)
			assert.are.equal('Red', result.meta.label)
			assert.are.equal(1, result.meta.pickStatus)
			assert.are.same({ 'heron', 'river' }, { result.keywords[1].name, result.keywords[2].name })
			assert.are.equal(photo.keywords[1], result.keywords[1]) -- the same LrKeyword, not a copy

			assert.is_false(exists(rendered)) -- the temporary render is removed
			assert.are.equal(0, #lr.dialogs)
			local scope = lr.scopes[1]
			assert.are.same({ 1, 1 }, scope.portions[#scope.portions])
			assert.is_truthy(context)
		end)

		it('does not copy what the original does not have', function()
			original('plain.NEF')
			export { lr.catalog.photos[1] }
			local result = lr.find('addPhoto')[1].photo
			assert.are.same({}, lr.find('setRawMetadata'))
			assert.are.same({}, result.keywords)
		end)

		it('forces the render to a 16-bit ProPhoto TIFF and hides the location', function()
			local settings = { LR_format = 'JPEG', LR_export_bitDepth = 8 }
			provider.updateExportSettings(settings)
			assert.are.equal('TIFF', settings.LR_format)
			assert.are.equal(16, settings.LR_export_bitDepth)
			assert.are.equal('ProPhotoRGB', settings.LR_export_colorSpace)
			assert.are.same({ 'TIFF' }, provider.allowFileFormats)
			assert.is_truthy(table.concat(provider.hideSections, ','):find('exportLocation', 1, true))
		end)

		it('sends the RAW original itself for a RAW recipe, without rendering', function()
			local raw = original('IMG_0002.CR3')
			local jpeg = original('holiday.jpg', { fileFormat = 'JPG' })
			export({ raw, jpeg }, 'develop')

			local submits = daemon.posts('^/v1/jobs$')
			assert.are.equal(1, #submits)
			assert.are.same({ raw.meta.path }, submits[1].body.paths)
			assert.are.equal(2, #lr.find('skipRender'))
			assert.are.equal(0, #lr.find('waitForRender'))
			assert.are.equal(1, #lr.find('addPhoto'))

			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, 'holiday.jpg'))
			assert.is_true(contains(lr.dialogs[1].text, 'camera RAW'))
			assert.is_true(contains(lr.dialogs[1].title, '1 of 2'))
		end)

		it('names each failed photo once and still finishes the others', function()
			local good = original('good.CR3')
			local bad = original('bad.CR3')
			daemon.failures[renders .. '/bad.tif'] = 'cannot decode: truncated file'
			export { good, bad }

			assert.are.equal(1, #lr.find('addPhoto'))
			assert.are.equal(good, lr.find('addPhoto')[1].stackWith)
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, 'bad.CR3: cannot decode: truncated file'))
			assert.is_false(contains(lr.dialogs[1].text, 'good.CR3'))
		end)

		it('reports a render Lightroom could not make and carries on', function()
			local broken = original('missing.CR3')
			broken.renderError = 'the source file is missing'
			local fine = original('fine.CR3')
			export { broken, fine }
			assert.are.equal(1, #daemon.posts('^/v1/jobs$'))
			assert.are.equal(1, #lr.find('addPhoto'))
			assert.is_true(contains(lr.dialogs[1].text, 'missing.CR3: Lightroom could not render it'))
		end)

		it('says how to start truepix when it is not running, without a Lua error', function()
			lr.http.handler = nil
			local photo = original('IMG_0003.CR3')
			assert.has_no.errors(function()
				export { photo }
			end)
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, 'truepix is not running'))
			assert.is_true(contains(lr.dialogs[1].text, '127.0.0.1:48620'))
			assert.is_true(contains(lr.dialogs[1].text, 'truepix run'))
			assert.are.equal(1, #lr.find('skipRender'))
			assert.are.equal(0, #lr.find('addPhoto'))
		end)

		it('names the token file when the daemon refuses the token, once per export', function()
			daemon.token = 'another'
			export { original('a.CR3'), original('b.CR3') }
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, lr.prefs.tokenPath))
			assert.is_true(contains(lr.dialogs[1].text, 'refused the token'))
		end)

		it('explains a missing token file', function()
			lr.prefs.tokenPath = folder .. '/no-token-here'
			export { original('a.CR3') }
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, 'No truepix token in ' .. folder .. '/no-token-here'))
		end)

		it('refuses a recipe the daemon does not know, naming the ones it does', function()
			export({ original('a.CR3') }, 'sharpen-more')
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, '"sharpen-more"'))
			assert.is_true(contains(lr.dialogs[1].text, 'upscale, develop'))
			assert.are.equal(0, #daemon.posts('^/v1/jobs$'))
		end)

		it('passes a cancel on to the daemon and imports nothing more', function()
			daemon.stepsToDone = 50
			lr.cancelAfter = 5 -- after both are submitted (two checks each), during the first poll
			local photos = { original('a.CR3'), original('b.CR3') }
			export(photos)

			local cancels = daemon.posts('^/v1/jobs/%d+/cancel$')
			assert.are.equal(2, #cancels)
			assert.are.equal('cancelled', daemon.jobs[1].state)
			assert.are.equal('cancelled', daemon.jobs[2].state)
			assert.are.equal(0, #lr.find('addPhoto'))
			assert.is_false(exists(renders .. '/a.tif'))
			assert.is_false(exists(renders .. '/b.tif'))
			assert.are.equal(0, #lr.dialogs) -- the photographer cancelled: no error dialog
		end)

		it('reports progress while the jobs run and polls about twice a second', function()
			daemon.stepsToDone = 4
			export { original('a.CR3') }
			local portions = lr.scopes[1].portions
			assert.are.same({ 0.5, 1 }, portions[1])
			assert.are.same({ 1, 1 }, portions[#portions])
			for _, seconds in ipairs(lr.sleeps) do
				assert.are.equal(0.5, seconds)
			end
		end)

		it('says in the progress caption when truepix is paused, and goes on once resumed', function()
			daemon.paused = true
			lr.onSleep = function(count)
				if count == 3 then
					daemon.paused = false
				end
			end
			export { original('a.CR3') }
			local captions = lr.scopes[1].captions
			assert.are.equal(1, #captions) -- said once, not at every poll
			assert.is_true(contains(captions[1], 'truepix is paused'))
			assert.are.equal(1, #lr.find('addPhoto'))
		end)

		it('reuses a result already in the catalog instead of failing', function()
			local photo = original('again.CR3')
			local existing = lr.photo { path = folder .. '/again-truepix-x2.tif' }
			lr.catalog.photos[#lr.catalog.photos + 1] = existing
			export { photo }
			assert.are.equal(0, #lr.find('addPhoto'))
			assert.are.equal(0, #lr.dialogs)
		end)

		it('fills the recipe menu from the daemon when the dialog opens', function()
			local props = { truepix_recipe = 'upscale' }
			provider.startDialog(props)
			assert.are.equal(2, #props.truepix_recipeItems)
			assert.are.equal('develop', props.truepix_recipeItems[2].value)
			assert.is_true(contains(props.truepix_recipeItems[2].title, 'RAW'))
			assert.is_true(contains(props.truepix_status, '127.0.0.1:48620'))
		end)

		it('shows in the dialog that truepix is not running', function()
			lr.http.handler = nil
			local props = { truepix_recipe = 'upscale' }
			provider.startDialog(props)
			assert.is_true(contains(props.truepix_status, 'truepix is not running'))
			assert.are.equal('upscale', props.truepix_recipeItems[1].value)
		end)
	end)

	describe('Library menu item', function()
		local library

		before_each(function()
			library = require 'TruepixLibrary'
		end)

		local function run()
			return lr.modules.LrFunctionContext.callWithContext('spec', library.run)
		end

		it('asks for a recipe, renders the selection and stacks the results', function()
			local a, b = original('a.CR3', { rating = 2 }), original('b.CR3')
			lr.catalog.targets = { a, b }
			run()

			assert.are.equal(1, #lr.find('modal'))
			local session = lr.sessions[1]
			local settings = session.args.exportSettings
			assert.are.equal('TIFF', settings.LR_format)
			assert.are.equal(16, settings.LR_export_bitDepth)
			assert.are.equal('ProPhotoRGB', settings.LR_export_colorSpace)
			assert.are.equal('specificFolder', settings.LR_export_destinationType)
			assert.is_true(contains(settings.LR_export_destinationPathPrefix, renders .. '/truepix-'))

			local added = lr.find('addPhoto')
			assert.are.equal(2, #added)
			assert.are.equal(a, added[1].stackWith)
			assert.are.equal(b, added[2].stackWith)
			assert.are.equal(2, added[1].photo.meta.rating)
			assert.are.equal('upscale', lr.prefs.lastRecipe)
			-- the render folder is gone afterwards
			assert.is_false(exists(settings.LR_export_destinationPathPrefix))
			assert.is_true(lr.scopes[1].isDone)
		end)

		it('does nothing when the dialog is cancelled', function()
			lr.catalog.targets = { original('a.CR3') }
			lr.dialogAnswer = 'cancel'
			run()
			assert.are.equal(0, #daemon.posts('^/v1/jobs$'))
			assert.are.equal(0, #lr.sessions)
		end)

		it('asks for a selection first', function()
			run()
			assert.are.equal(1, #lr.dialogs)
			assert.is_true(contains(lr.dialogs[1].text, 'Select one or more photos'))
		end)

		it('says truepix is not running instead of showing the dialog', function()
			lr.http.handler = nil
			lr.catalog.targets = { original('a.CR3') }
			assert.has_no.errors(run)
			assert.are.equal(0, #lr.find('modal'))
			assert.is_true(contains(lr.dialogs[1].text, 'truepix is not running'))
		end)

		it('starts on its own task from the menu file', function()
			lr.catalog.targets = {}
			dofile(lr.PLUGIN_DIR .. '/TruepixMenuItem.lua')
			assert.are.equal(1, #lr.find('startAsyncTask'))
			assert.are.equal(1, #lr.dialogs)
		end)
	end)

	describe('post-process action (export filter)', function()
		local filterProvider

		before_each(function()
			filterProvider = require 'TruepixExportFilterProvider'
		end)

		local function postProcess(photos, settings)
			settings.truepix_filterRecipe = settings.truepix_filterRecipe or 'upscale'
			local context = lr.filterContext(photos, settings)
			filterProvider.postProcessRenderedPhotos({}, context)
			return lr.find('renditionIsDone')
		end

		it('replaces each rendered JPEG with its enhanced version, in the same format', function()
			local done = postProcess({ original('a.CR3'), original('b.CR3') }, { LR_format = 'JPEG' })
			assert.are.equal(2, #done)
			assert.is_true(done[1].success and done[2].success)
			assert.are.equal('enhanced', files.read(renders .. '/a.tif'))
			local submits = daemon.posts('^/v1/jobs$')
			assert.are.equal(2, #submits)
			local recipe = submits[1].body.recipe
			assert.are.equal('jpeg', recipe.format)
			assert.are.equal(8, recipe.bits)
			assert.are.equal('upscale-x2', recipe.steps[1].model)
			assert.is_true(submits[1].body.force)
			assert.are.same({ renders .. '/a.tif' }, submits[1].body.paths)
			-- the work folder is gone, and nothing was added to the catalog (the export decides where files go)
			assert.is_false(exists(submits[1].body.output_dir))
			assert.are.equal(0, #lr.find('addPhoto'))
			assert.are.equal(0, #lr.dialogs)
		end)

		it('keeps a 16-bit TIFF export 16-bit', function()
			postProcess({ original('a.CR3') }, { LR_format = 'TIFF', LR_export_bitDepth = 16 })
			local recipe = daemon.posts('^/v1/jobs$')[1].body.recipe
			assert.are.equal('tiff', recipe.format)
			assert.are.equal(16, recipe.bits)
		end)

		it('explains which export formats it can post-process', function()
			local done = postProcess({ original('a.CR3') }, { LR_format = 'DNG' })
			assert.is_false(done[1].success)
			assert.is_true(contains(done[1].message, 'JPEG, TIFF or PNG'))
			assert.are.equal(0, #daemon.posts('^/v1/jobs$'))
		end)

		it('fails each rendition with the reason when truepix is not running, without a Lua error', function()
			lr.http.handler = nil
			local done
			assert.has_no.errors(function()
				done = postProcess({ original('a.CR3'), original('b.CR3') }, { LR_format = 'JPEG' })
			end)
			assert.are.equal(2, #done)
			for _, d in ipairs(done) do
				assert.is_false(d.success)
				assert.is_true(contains(d.message, 'truepix is not running'))
			end
		end)

		it('fails only the file truepix could not process', function()
			daemon.failures[renders .. '/bad.tif'] = 'cannot decode: truncated file'
			local done = postProcess({ original('bad.CR3'), original('good.CR3') }, { LR_format = 'PNG' })
			assert.is_false(done[1].success)
			assert.are.equal('cannot decode: truncated file', done[1].message)
			assert.is_true(done[2].success)
		end)

		it('refuses a RAW recipe, which needs the original rather than rendered pixels', function()
			local done = postProcess({ original('a.CR3') }, { LR_format = 'TIFF', truepix_filterRecipe = 'develop' })
			assert.is_false(done[1].success)
			assert.is_true(contains(done[1].message, 'Export To: truepix'))
		end)
	end)

	describe('Info.lua', function()
		it('names files that exist, for each provider and menu item', function()
			local info = dofile(lr.PLUGIN_DIR .. '/Info.lua')
			local named = { info.LrPluginInfoProvider, info.LrExportServiceProvider.file, info.LrExportFilterProvider.file,
				info.LrLibraryMenuItems[1].file }
			for _, name in ipairs(named) do
				assert.is_true(exists(lr.PLUGIN_DIR .. '/' .. name), name)
				assert.is_truthy(loadfile(lr.PLUGIN_DIR .. '/' .. name), name)
			end
			assert.are.equal('Enhance with truepix...', info.LrLibraryMenuItems[1].title)
		end)
	end)

	describe('Plug-in Manager section', function()
		local info, TruepixDaemon

		before_each(function()
			info = require 'TruepixPluginInfoProvider'
			TruepixDaemon = require 'TruepixDaemon'
		end)

		it('shows that the daemon answers, its version, the address and the token file', function()
			local props = {}
			info.startDialog(props)
			assert.is_true(props.daemonRunning)
			assert.is_true(contains(props.daemonStatus, 'truepix 0.1.0 answers'))
			assert.are.equal('127.0.0.1:48620 (Plug-in Manager)', props.portInUse)
			assert.are.equal(lr.prefs.tokenPath, props.tokenInUse)
			assert.are.equal(48620, props.port)
		end)

		it('says what to do when nothing answers', function()
			lr.http.handler = nil
			local props = {}
			info.startDialog(props)
			assert.is_false(props.daemonRunning)
			assert.is_true(contains(props.daemonStatus, 'truepix run'))
		end)

		it('saves a changed port and token file', function()
			local props = {}
			info.startDialog(props)
			props.port = 50001
			props.tokenPath = '/elsewhere/token'
			info.endDialog(props)
			assert.are.equal(50001, lr.prefs.port)
			assert.are.equal('/elsewhere/token', lr.prefs.tokenPath)
			local conn = TruepixDaemon.connection()
			assert.are.equal(50001, conn.port)
			assert.are.equal('/elsewhere/token', conn.tokenPath)
		end)

		it('finds the port in the state file when none is set, else uses 48620', function()
			lr.prefs.port = 0
			lr.prefs.tokenPath = ''
			local state = writeFile(folder .. '/daemon.json', '{"pid": 12, "port": 51234}')
			local statePath = TruepixDaemon.statePath
			TruepixDaemon.statePath = function() return state end
			local conn = TruepixDaemon.connection()
			assert.are.equal(51234, conn.port)
			assert.are.equal('state file', conn.portSource)
			assert.are.equal(TruepixDaemon.defaultTokenPath(), conn.tokenPath)
			os.remove(state)
			conn = TruepixDaemon.connection()
			assert.are.equal(48620, conn.port)
			assert.are.equal('default', conn.portSource)
			TruepixDaemon.statePath = statePath
		end)

		it('puts the token where the daemon does on each system', function()
			_G.MAC_ENV = true
			assert.is_true(contains(TruepixDaemon.defaultTokenPath(), '/Library/Application Support/truepix/token'))
			_G.MAC_ENV = false
			local linux = TruepixDaemon.defaultTokenPath()
			assert.is_true(contains(linux, '/truepix/token'))
		end)
	end)

	describe('json', function()
		local json = require 'json'

		it('round-trips what the API sends', function()
			local text = '{"jobs": [{"id": 7, "error": null, "outputs": ["/a b/c\\"d.tif"], "progress": 0.25,'
				.. ' "name": "caf\\u00e9"}], "empty": {}}'
			local value = assert(json.decode(text))
			assert.are.equal(7, value.jobs[1].id)
			assert.are.equal(json.null, value.jobs[1].error)
			assert.are.equal('/a b/c"d.tif', value.jobs[1].outputs[1])
			assert.are.equal('café', value.jobs[1].name)
			assert.are.equal('{}', json.encode(value.empty))
			assert.are.same(value, json.decode(json.encode(value)))
		end)

		it('says where malformed JSON breaks', function()
			local value, err = json.decode('{"a": [1, 2}')
			assert.is_nil(value)
			assert.is_true(contains(err, 'character 12'))
		end)
	end)
end)
