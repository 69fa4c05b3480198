-- Library > Plug-in Extras > "Enhance with truepix...": Lightroom runs this file each time.
require('TruepixLibrary').start()
