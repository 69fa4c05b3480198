--[[----------------------------------------------------------------------------
TruepixLibrary.lua -- Library > Plug-in Extras > "Enhance with truepix...":
pick a recipe for the selected photos, then the same batch as the export
service (rendered 16-bit TIFFs, or the RAW originals for a RAW recipe).
------------------------------------------------------------------------------]]

local LrApplication = import 'LrApplication'
local LrBinding = import 'LrBinding'
local LrDialogs = import 'LrDialogs'
local LrExportSession = import 'LrExportSession'
local LrFileUtils = import 'LrFileUtils'
local LrFunctionContext = import 'LrFunctionContext'
local LrPathUtils = import 'LrPathUtils'
local LrPrefs = import 'LrPrefs'
local LrProgressScope = import 'LrProgressScope'
local LrTasks = import 'LrTasks'
local LrView = import 'LrView'

local TruepixDaemon = require 'TruepixDaemon'
local provider = require 'TruepixExportServiceProvider'

local TruepixLibrary = {}

local function chooseRecipe(context, recipes, default)
	local prefs = LrPrefs.prefsForPlugin()
	local props = LrBinding.makePropertyTable(context)
	props.recipe = TruepixDaemon.findRecipe(recipes, prefs.lastRecipe) and prefs.lastRecipe or default
	local items = TruepixDaemon.menuItems(recipes)
	local f = LrView.osFactory()
	local contents = f:column {
		bind_to_object = props,
		spacing = f:control_spacing(),
		f:row {
			f:static_text { title = 'Recipe:' },
			f:popup_menu { value = LrView.bind 'recipe', items = items, width_in_chars = 30 },
		},
		f:static_text { title = 'Results are written beside each original and stacked above it.' },
	}
	local answer = LrDialogs.presentModalDialog { title = 'Enhance with truepix', contents = contents,
		actionVerb = 'Enhance' }
	if answer ~= 'ok' then
		return nil
	end
	prefs.lastRecipe = props.recipe
	return props.recipe
end

-- Where Lightroom renders the TIFFs truepix reads (removed afterwards).
local function renderSettings(folder)
	local settings = {
		LR_export_destinationType = 'specificFolder',
		LR_export_destinationPathPrefix = folder,
		LR_export_useSubfolder = false,
		LR_collisionHandling = 'rename',
		LR_reimportExportedPhoto = false,
		LR_renamingTokensOn = false,
	}
	for key, value in pairs(provider.RENDER_SETTINGS) do
		settings[key] = value
	end
	return settings
end

function TruepixLibrary.run(context)
	local catalog = LrApplication.activeCatalog()
	local photos = catalog:getTargetPhotos()
	if #photos == 0 then
		LrDialogs.message('truepix', 'Select one or more photos to enhance first.', 'info')
		return nil
	end
	local conn = TruepixDaemon.connection()
	local recipes, defaultOrErr = TruepixDaemon.recipes(conn)
	if not recipes then
		LrDialogs.message('truepix', defaultOrErr.message, 'critical')
		return nil
	end
	local recipe = chooseRecipe(context, recipes, defaultOrErr)
	if not recipe then
		return nil
	end
	local folder = LrPathUtils.child(LrPathUtils.getStandardFilePath('temp'),
		('truepix-%d-%04d'):format(os.time(), math.random(0, 9999)))
	LrFileUtils.createAllDirectories(folder)
	context:addCleanupHandler(function()
		LrFileUtils.delete(folder)
	end)
	local session = LrExportSession { photosToExport = photos, exportSettings = renderSettings(folder) }
	local progress = LrProgressScope {
		title = #photos > 1 and ('Enhancing %d photos with truepix'):format(#photos) or 'Enhancing one photo with truepix',
		functionContext = context,
	}
	local batch = provider.enhanceSession(session, recipe, progress)
	progress:done()
	return batch
end

function TruepixLibrary.start()
	LrTasks.startAsyncTask(function()
		LrFunctionContext.callWithContext('truepix', TruepixLibrary.run)
	end)
end

return TruepixLibrary
