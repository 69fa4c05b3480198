--[[----------------------------------------------------------------------------
TruepixExportServiceProvider.lua -- "truepix" in the Export dialog's Export To
menu. Lightroom renders each photo as a 16-bit ProPhoto RGB TIFF into a
temporary folder (or, for a RAW recipe, renders nothing and truepix reads the
original RAW); truepix enhances it, the result is written beside the original
and added to the catalog stacked above it.
------------------------------------------------------------------------------]]

local LrPathUtils = import 'LrPathUtils'
local LrTasks = import 'LrTasks'
local LrView = import 'LrView'

local TruepixDaemon = require 'TruepixDaemon'
local TruepixEnhance = require 'TruepixEnhance'

local provider = {}

-- What Lightroom renders for an RGB recipe: the daemon's input, full quality.
provider.RENDER_SETTINGS = {
	LR_format = 'TIFF',
	LR_export_bitDepth = 16,
	LR_export_colorSpace = 'ProPhotoRGB',
	LR_tiff_compressionMethod = 'compressionMethod_None',
	LR_minimizeEmbeddedMetadata = false,
	LR_outputSharpeningOn = false,
	LR_size_doConstrain = false,
	LR_useWatermark = false,
}

local RAW_FORMATS = { RAW = true, DNG = true }

provider.exportPresetFields = {
	{ key = 'truepix_recipe', default = 'upscale' },
}

-- The location is the original's folder; the format is fixed (see RENDER_SETTINGS);
-- sharpening and watermarks before an upscale would be enlarged with the photo.
provider.hideSections = { 'exportLocation', 'fileSettings', 'outputSharpening', 'watermarking', 'video' }
provider.allowFileFormats = { 'TIFF' }
provider.allowColorSpaces = { 'ProPhotoRGB' }
provider.hidePrintResolution = true
provider.canExportVideo = false

function provider.updateExportSettings(exportSettings)
	for key, value in pairs(provider.RENDER_SETTINGS) do
		exportSettings[key] = value
	end
end

-- Fill the recipe menu from the daemon each time the dialog opens.
function provider.startDialog(propertyTable)
	propertyTable.truepix_recipeItems = { { title = propertyTable.truepix_recipe, value = propertyTable.truepix_recipe } }
	propertyTable.truepix_status = 'Asking truepix for its recipes...'
	LrTasks.startAsyncTask(function()
		local conn = TruepixDaemon.connection()
		local recipes, defaultOrErr = TruepixDaemon.recipes(conn)
		if not recipes then
			propertyTable.truepix_status = defaultOrErr.message
			return
		end
		propertyTable.truepix_recipeItems = TruepixDaemon.menuItems(recipes)
		if not TruepixDaemon.findRecipe(recipes, propertyTable.truepix_recipe) then
			propertyTable.truepix_recipe = defaultOrErr
		end
		propertyTable.truepix_status = ('truepix answers on 127.0.0.1:%d.'):format(conn.port)
	end)
end

function provider.sectionsForTopOfDialog(f, _)
	local bind = LrView.bind
	return {
		{
			title = 'truepix',
			synopsis = bind 'truepix_recipe',
			f:row {
				f:static_text { title = 'Recipe:', alignment = 'right', width = LrView.share 'truepix_label' },
				f:popup_menu { value = bind 'truepix_recipe', items = bind 'truepix_recipeItems', width_in_chars = 36 },
			},
			f:row {
				f:static_text { title = '', width = LrView.share 'truepix_label' },
				f:static_text { title = bind 'truepix_status', fill_horizontal = 1, height_in_lines = 2 },
			},
			f:row {
				f:static_text {
					title = 'Results are written beside each original and stacked above it in the catalog.',
					fill_horizontal = 1,
				},
			},
		},
	}
end

-- Send one rendition to the batch: the rendered TIFF, or the original RAW.
local function sendRendition(batch, rendition, recipe)
	local photo = rendition.photo
	local original = photo:getRawMetadata('path')
	local outputDir = LrPathUtils.parent(original)
	if recipe.input == 'raw' then
		rendition:skipRender()
		local format = photo:getRawMetadata('fileFormat')
		if not RAW_FORMATS[format] then
			batch:fail(photo, ('recipe "%s" develops camera RAW files; this photo is a %s'):format(recipe.name,
				tostring(format)))
			return
		end
		batch:submit { photo = photo, path = original, outputDir = outputDir }
		return
	end
	local ok, pathOrMessage = rendition:waitForRender()
	if not ok then
		batch:fail(photo, 'Lightroom could not render it: ' .. tostring(pathOrMessage))
		return
	end
	batch:submit { photo = photo, path = pathOrMessage, outputDir = outputDir, tempFile = pathOrMessage }
end

-- Runs one batch over an LrExportSession's renditions; shared with the Library menu item.
function provider.enhanceSession(exportSession, recipeName, progress)
	local conn = TruepixDaemon.connection()
	local batch = TruepixEnhance.new { conn = conn, progress = progress, total = exportSession:countRenditions() }
	local recipes, defaultOrErr = TruepixDaemon.recipes(conn)
	local recipe
	if recipes then
		recipe, defaultOrErr = TruepixDaemon.findRecipe(recipes, recipeName)
	end
	if not recipe then
		batch.fatal = type(defaultOrErr) == 'table' and defaultOrErr.message or defaultOrErr
		for _, rendition in exportSession:renditions() do
			rendition:skipRender()
		end
		batch:report()
		return batch
	end
	batch.recipe = recipe
	for _, rendition in exportSession:renditions { stopIfCanceled = true } do
		if batch.fatal or batch:checkCanceled() then
			rendition:skipRender()
		else
			sendRendition(batch, rendition, recipe)
		end
	end
	batch:finish()
	batch:report()
	return batch
end

function provider.processRenderedPhotos(_, exportContext)
	local session = exportContext.exportSession
	local count = session:countRenditions()
	local progress = exportContext:configureProgress {
		title = count > 1 and ('Enhancing %d photos with truepix'):format(count) or 'Enhancing one photo with truepix',
	}
	provider.enhanceSession(session, exportContext.propertyTable.truepix_recipe, progress)
end

return provider
