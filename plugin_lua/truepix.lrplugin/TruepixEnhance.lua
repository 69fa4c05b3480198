--[[----------------------------------------------------------------------------
TruepixEnhance.lua -- one batch of photos sent to truepix: submit each file,
follow the jobs with a progress scope that can be cancelled (the cancel reaches
the daemon), add each result to the catalog stacked above its original with the
original's rating, label, flag and keywords, and report every failure once.

  local batch = TruepixEnhance.new{ conn = ..., recipe = ..., progress = scope, total = n }
  batch:submit{ photo = p, path = file, outputDir = dir, tempFile = file or nil }
  batch:fail(photo, reason)                        -- a photo that could not be sent
  batch:finish()                                   -- waits, imports, cleans up
  batch:report()                                   -- one dialog for the whole batch

new{} also takes `submitRecipe` (an inline recipe table sent instead of the name),
`force` (process again even if the daemon did the same file with the same recipe),
and the hooks `onDone(item, job)` / `onFailed(item, reason)`, which replace adding
to the catalog and collecting failures for the report (the export filter uses them).
------------------------------------------------------------------------------]]

local LrApplication = import 'LrApplication'
local LrDialogs = import 'LrDialogs'
local LrFileUtils = import 'LrFileUtils'
local LrPathUtils = import 'LrPathUtils'
local LrTasks = import 'LrTasks'

local TruepixDaemon = require 'TruepixDaemon'

local TruepixEnhance = {}
TruepixEnhance.__index = TruepixEnhance

TruepixEnhance.POLL_SECONDS = 0.5

local FINISHED = { done = true, failed = true, cancelled = true }

local function photoName(photo)
	local ok, name = pcall(photo.getFormattedMetadata, photo, 'fileName')
	if ok and name and name ~= '' then
		return name
	end
	return LrPathUtils.leafName(photo:getRawMetadata('path') or '?')
end

function TruepixEnhance.new(args)
	return setmetatable({
		conn = args.conn,
		recipe = args.recipe,
		submitRecipe = args.submitRecipe,
		force = args.force,
		onDone = args.onDone,
		onFailed = args.onFailed,
		progress = args.progress,
		total = math.max(args.total or 1, 1),
		pending = {}, -- submitted items, not finished: {photo, path, outputDir, tempFile, job}
		failures = {}, -- {name, reason}
		added = {}, -- LrPhoto of each result added (or found) in the catalog
		enhanced = 0, -- photos whose job finished done
		canceled = false,
		fatal = nil, -- an error that stops the whole batch (daemon gone, token refused)
	}, TruepixEnhance)
end

function TruepixEnhance:fail(photo, reason)
	self.failures[#self.failures + 1] = { name = photoName(photo), reason = reason }
end

local function removeTemp(path)
	if path and LrFileUtils.exists(path) then
		LrFileUtils.delete(path)
	end
end

-- Errors that no further request can get past.
local function isFatal(err)
	return err.kind == 'not_running' or err.kind == 'unauthorized' or err.kind == 'no_token'
end

function TruepixEnhance:checkCanceled()
	if not self.canceled and self.progress and self.progress:isCanceled() then
		self.canceled = true
	end
	return self.canceled
end

-- An item that will not be enhanced: the hook hears of it, or the report will.
function TruepixEnhance:itemFailed(item, reason)
	removeTemp(item.tempFile)
	if self.onFailed then
		self.onFailed(item, reason)
	else
		self:fail(item.photo, reason)
	end
end

function TruepixEnhance:submit(item)
	if self.fatal then
		self:itemFailed(item, self.fatal)
		return false
	end
	if self:checkCanceled() then
		removeTemp(item.tempFile)
		if self.onFailed then
			self.onFailed(item, 'cancelled')
		end
		return false
	end
	local job, err = TruepixDaemon.submit(self.conn, item.path, self.submitRecipe or self.recipe.name, item.outputDir,
		self.force)
	if not job then
		if isFatal(err) then
			self.fatal = err.message
		end
		self:itemFailed(item, err.message)
		return false
	end
	item.job = job
	self.pending[#self.pending + 1] = item
	return true
end

-- Copy what the photographer set on the original onto its enhanced version.
local function copyMetadata(original, result)
	local rating = original:getRawMetadata('rating')
	if rating and rating > 0 then
		result:setRawMetadata('rating', rating)
	end
	local label = original:getFormattedMetadata('label')
	if label and label ~= '' then
		result:setRawMetadata('label', label)
	end
	local pick = original:getRawMetadata('pickStatus')
	if pick and pick ~= 0 then
		result:setRawMetadata('pickStatus', pick)
	end
	for _, keyword in ipairs(original:getRawMetadata('keywords') or {}) do
		result:addKeyword(keyword)
	end
end

function TruepixEnhance:addToCatalog(original, outputs)
	local catalog = LrApplication.activeCatalog()
	local problem
	catalog:withWriteAccessDo('Add truepix results', function()
		for _, path in ipairs(outputs) do
			local result = catalog:findPhotoByPath(path)
			if not result then
				local ok, added = pcall(catalog.addPhoto, catalog, path, original, 'above')
				if ok then
					result = added
					copyMetadata(original, result)
				else
					problem = ('the result %s was written but Lightroom could not import it: %s')
						:format(path, tostring(added))
				end
			end
			if result then
				self.added[#self.added + 1] = result
			end
		end
	end, { timeout = 30 })
	if problem then
		self:fail(original, problem)
	end
end

function TruepixEnhance:settle(item, job)
	if job.state == 'done' then
		self.enhanced = self.enhanced + 1
		if self.onDone then
			self.onDone(item, job)
		else
			self:addToCatalog(item.photo, job.outputs or {})
		end
		removeTemp(item.tempFile)
	elseif job.state == 'failed' then
		self:itemFailed(item, job.error or 'truepix could not process it')
	else
		self:itemFailed(item, 'cancelled')
	end
end

-- The photographer cancelled: the daemon stops these jobs; the report stays quiet about them.
function TruepixEnhance:cancelPending()
	for _, item in ipairs(self.pending) do
		TruepixDaemon.cancel(self.conn, item.job.id)
		removeTemp(item.tempFile)
		if self.onFailed then
			self.onFailed(item, 'cancelled')
		end
	end
	self.pending = {}
end

function TruepixEnhance:showProgress(settledCount, running)
	if self.progress then
		self.progress:setPortionComplete(settledCount + running, self.total)
	end
end

-- Nothing of ours runs: say why in the progress caption (paused, or other jobs first).
function TruepixEnhance:explainWaiting()
	local status = self.progress and TruepixDaemon.status(self.conn)
	if not status then
		return
	end
	local caption
	if status.paused then
		caption = 'truepix is paused: resume it from its tray icon or with "truepix resume"'
	else
		local queued = type(status.counts) == 'table' and tonumber(status.counts.queued) or 0
		caption = ('Waiting for truepix (%d job%s in its queue)'):format(queued, queued == 1 and '' or 's')
	end
	if caption ~= self.caption then
		self.caption = caption
		self.progress:setCaption(caption)
	end
end

-- Follow the jobs until each is done, failed or cancelled, or the user cancels.
function TruepixEnhance:finish()
	local settled = #self.failures
	while #self.pending > 0 and not self.fatal do
		if self:checkCanceled() then
			self:cancelPending()
			break
		end
		local still, running, anyRunning = {}, 0, false
		for _, item in ipairs(self.pending) do
			local job, err = TruepixDaemon.job(self.conn, item.job.id)
			if not job then
				if isFatal(err) then
					self.fatal = err.message
					still[#still + 1] = item
				else
					self:itemFailed(item, err.message)
					settled = settled + 1
				end
			elseif FINISHED[job.state] then
				self:settle(item, job)
				settled = settled + 1
			else
				running = running + (tonumber(job.progress) or 0)
				anyRunning = anyRunning or job.state == 'running'
				still[#still + 1] = item
			end
		end
		self.pending = still
		self:showProgress(settled, running)
		if #still > 0 and not anyRunning then
			self:explainWaiting()
		end
		if #self.pending > 0 and not self.fatal then
			LrTasks.sleep(TruepixEnhance.POLL_SECONDS)
		end
	end
	if self.fatal then
		for _, item in ipairs(self.pending) do
			self:itemFailed(item, self.fatal)
		end
		self.pending = {}
	end
	return self.added
end

-- One dialog for the whole batch: the daemon problem, or each photo that failed.
function TruepixEnhance:report()
	if self.fatal then
		LrDialogs.message('truepix', self.fatal, 'critical')
		return
	end
	if #self.failures == 0 then
		return
	end
	local lines = {}
	for i, failure in ipairs(self.failures) do
		if i > 20 then
			lines[#lines + 1] = ('... and %d more'):format(#self.failures - 20)
			break
		end
		lines[#lines + 1] = ('%s: %s'):format(failure.name, failure.reason)
	end
	local heading = ('truepix enhanced %d of %d photos'):format(self.enhanced, self.total)
	if self.canceled then
		heading = heading .. ' (cancelled)'
	end
	LrDialogs.message(heading, table.concat(lines, '\n'), self.canceled and 'info' or 'warning')
end

return TruepixEnhance
