<?xml version="1.0" encoding="UTF-8"?>
<!--
  Flattens every MARCXML record in a document into one string, in C (libxslt), so
  the Python mapper splits strings instead of creating an lxml proxy per element
  (measured: 31 µs vs ~60 µs per record). Layout, with Unicode noncharacters as
  delimiters (never valid interchange text; private-use code points are not safe
  because Japanese catalogues use them for gaiji):
    U+FDD0 record   U+FDD1 field   U+FDD3 tag/value separator   U+FDD2 subfield (code + value)
  The leader is a field with an empty tag.
-->
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform" xmlns:m="http://www.loc.gov/MARC21/slim">
  <xsl:output method="text" encoding="UTF-8"/>
  <xsl:template match="/">
    <xsl:for-each select="//m:record">
      <xsl:text>&#xFDD0;</xsl:text>
      <xsl:for-each select="*">
        <xsl:text>&#xFDD1;</xsl:text><xsl:value-of select="@tag"/><xsl:text>&#xFDD3;</xsl:text><xsl:value-of select="text()"/>
        <xsl:for-each select="m:subfield"><xsl:text>&#xFDD2;</xsl:text><xsl:value-of select="@code"/><xsl:value-of select="."/></xsl:for-each>
      </xsl:for-each>
    </xsl:for-each>
  </xsl:template>
</xsl:stylesheet>
