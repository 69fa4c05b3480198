--[[----------------------------------------------------------------------------
TruepixExportFilterProvider.lua -- "truepix" as a post-process action that any
export preset can add (Export dialog > Post-Process Actions): each file the
export renders (JPEG, TIFF or PNG) is enhanced by truepix and replaces the
rendered file, in the same format, before Lightroom hands it on (to the export
folder, or to another service).
------------------------------------------------------------------------------]]

local LrFileUtils = import 'LrFileUtils'
local LrPathUtils = import 'LrPathUtils'
local LrProgressScope = import 'LrProgressScope'
local LrTasks = import 'LrTasks'
local LrView = import 'LrView'

local TruepixDaemon = require 'TruepixDaemon'
local TruepixEnhance = require 'TruepixEnhance'

local filter = {}

-- Lightroom's export format -> the daemon's output format.
local FORMATS = { JPEG = 'jpeg', TIFF = 'tiff', PNG = 'png' }

filter.exportPresetFields = {
	{ key = 'truepix_filterRecipe', default = 'upscale' },
}

local function fillRecipes(propertyTable)
	LrTasks.startAsyncTask(function()
		local recipes, defaultOrErr = TruepixDaemon.recipes(TruepixDaemon.connection())
		if not recipes then
			propertyTable.truepix_filterStatus = defaultOrErr.message
			return
		end
		propertyTable.truepix_filterRecipes = TruepixDaemon.menuItems(recipes, true)
		propertyTable.truepix_filterStatus = 'Each exported JPEG, TIFF or PNG is replaced by its enhanced version.'
	end)
end

function filter.sectionForFilterInDialog(f, propertyTable)
	propertyTable.truepix_filterRecipes = {
		{ title = propertyTable.truepix_filterRecipe, value = propertyTable.truepix_filterRecipe },
	}
	fillRecipes(propertyTable)
	return {
		title = 'truepix',
		f:row {
			f:static_text { title = 'Recipe:' },
			f:popup_menu { value = LrView.bind 'truepix_filterRecipe', items = LrView.bind 'truepix_filterRecipes',
				width_in_chars = 24 },
		},
		f:row {
			f:static_text { title = LrView.bind 'truepix_filterStatus', fill_horizontal = 1, height_in_lines = 2 },
		},
	}
end

-- The recipe as an inline recipe whose output has the export's format, so the
-- enhanced file can take the rendered file's place.
local function inlineRecipe(recipe, settings)
	local format = FORMATS[settings.LR_format]
	if not format then
		return nil, ('truepix can post-process JPEG, TIFF or PNG exports; this export makes %s files')
			:format(tostring(settings.LR_format))
	end
	if recipe.input == 'raw' then
		return nil, ('recipe "%s" develops camera RAW files; a post-process action gets rendered pixels. '
			.. 'Use "Export To: truepix" for it.'):format(recipe.name)
	end
	local bits = (format ~= 'jpeg' and tonumber(settings.LR_export_bitDepth) == 16) and 16 or 8
	return { name = recipe.name, steps = recipe.steps, format = format, bits = bits, suffix = recipe.suffix,
		guard = recipe.guard }
end

-- Find the recipe, or the reason no file of this export can be enhanced.
local function prepare(settings)
	local recipes, defaultOrErr = TruepixDaemon.recipes(TruepixDaemon.connection())
	if not recipes then
		return nil, defaultOrErr.message
	end
	local recipe, problem = TruepixDaemon.findRecipe(recipes, settings.truepix_filterRecipe)
	if not recipe then
		return nil, problem
	end
	local inline, why = inlineRecipe(recipe, settings)
	return inline and recipe, inline or why
end

-- Move the enhanced file over the rendered one.
local function replaceRendered(item, job)
	local output = job.outputs and job.outputs[1]
	if not output then
		item.rendition:renditionIsDone(false, 'truepix finished without an output file')
		return
	end
	LrFileUtils.delete(item.path)
	local ok, err = pcall(LrFileUtils.move, output, item.path)
	if not ok or not LrFileUtils.exists(item.path) then
		item.rendition:renditionIsDone(false, ('could not move %s to %s: %s'):format(output, item.path, tostring(err)))
		return
	end
	item.rendition:renditionIsDone(true)
end

function filter.postProcessRenderedPhotos(functionContext, filterContext)
	local settings = filterContext.propertyTable
	local recipe, inlineOrProblem = prepare(settings)
	local folder = LrPathUtils.child(LrPathUtils.getStandardFilePath('temp'),
		('truepix-filter-%d-%04d'):format(os.time(), math.random(0, 9999)))
	LrFileUtils.createAllDirectories(folder)
	local progress = LrProgressScope { title = 'Enhancing with truepix', functionContext = functionContext }
	local batch = TruepixEnhance.new {
		conn = TruepixDaemon.connection(), recipe = recipe, submitRecipe = inlineOrProblem, force = true,
		progress = progress, total = 1,
		onDone = replaceRendered,
		onFailed = function(item, reason)
			item.rendition:renditionIsDone(false, reason)
		end,
	}
	-- One at a time: each rendition is finished before the iterator moves on, as
	-- Lightroom expects of a filter; Lightroom keeps rendering the next ones meanwhile.
	for sourceRendition, renditionToSatisfy in filterContext:renditions() do
		local ok, pathOrMessage = sourceRendition:waitForRender()
		if not ok then
			renditionToSatisfy:renditionIsDone(false, pathOrMessage)
		elseif not recipe then
			renditionToSatisfy:renditionIsDone(false, inlineOrProblem)
		else
			batch:submit { photo = sourceRendition.photo, path = pathOrMessage, outputDir = folder,
				rendition = renditionToSatisfy }
			batch:finish()
		end
	end
	progress:done()
	LrFileUtils.delete(folder)
end

return filter
