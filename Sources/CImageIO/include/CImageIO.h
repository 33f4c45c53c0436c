// Image codecs over libpng and libjpeg-turbo (filled by the data work).
