--[[----------------------------------------------------------------------------
Info.lua -- the truepix plug-in for Lightroom Classic.

Sends photos to the truepix daemon running on this computer ("truepix run")
and brings the enhanced results back into the catalog, stacked above their
originals.
------------------------------------------------------------------------------]]

return {
	LrSdkVersion = 10.0,
	LrSdkMinimumVersion = 6.0,
	LrToolkitIdentifier = 'org.truepix.lightroom',
	LrPluginName = 'truepix',
	LrPluginInfoProvider = 'TruepixPluginInfoProvider.lua',
	LrExportServiceProvider = {
		title = 'truepix',
		file = 'TruepixExportServiceProvider.lua',
	},
	LrExportFilterProvider = {
		title = 'truepix',
		file = 'TruepixExportFilterProvider.lua',
		id = 'truepix',
	},
	LrLibraryMenuItems = {
		{
			title = 'Enhance with truepix...',
			file = 'TruepixMenuItem.lua',
			enabledWhen = 'photosSelected',
		},
	},
	VERSION = { major = 0, minor = 1, revision = 0 },
}
