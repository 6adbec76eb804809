<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:m="http://www.loc.gov/MARC21/slim" xmlns:dc="http://purl.org/dc/elements/1.1/"
    xmlns:srw_dc="info:srw/schema/1/dc-schema" exclude-result-prefixes="m">
  <xsl:output method="xml" indent="yes" encoding="UTF-8"/>
  <xsl:template match="/"><xsl:apply-templates select="m:record"/></xsl:template>
  <xsl:template name="j">
    <xsl:param name="codes"/>
    <xsl:for-each select="m:subfield[contains($codes, @code)]">
      <xsl:if test="position() &gt; 1"><xsl:text> </xsl:text></xsl:if><xsl:value-of select="."/>
    </xsl:for-each>
  </xsl:template>
  <xsl:template match="m:record">
    <srw_dc:dc>
      <xsl:for-each select="m:datafield[@tag='245'] | m:datafield[@tag='880'][starts-with(m:subfield[@code='6'],'245')]">
        <dc:title><xsl:call-template name="j"><xsl:with-param name="codes" select="'abfgknps'"/></xsl:call-template></dc:title>
      </xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='100' or @tag='110' or @tag='111' or @tag='700' or @tag='710' or @tag='711'] | m:datafield[@tag='880'][contains('100 110 111 700 710 711', substring(m:subfield[@code='6'],1,3))]">
        <dc:creator><xsl:call-template name="j"><xsl:with-param name="codes" select="'abcdq'"/></xsl:call-template></dc:creator>
      </xsl:for-each>
      <xsl:for-each select="m:datafield[starts-with(@tag,'6')]">
        <dc:subject><xsl:call-template name="j"><xsl:with-param name="codes" select="'abcdqtvxyz'"/></xsl:call-template></dc:subject>
      </xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='520']/m:subfield[@code='a']"><dc:description><xsl:value-of select="."/></dc:description></xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='260' or @tag='264']/m:subfield[@code='b']"><dc:publisher><xsl:value-of select="."/></dc:publisher></xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='260' or @tag='264']/m:subfield[@code='c']"><dc:date><xsl:value-of select="."/></dc:date></xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='020']/m:subfield[@code='a']"><dc:identifier>URN:ISBN:<xsl:value-of select="."/></dc:identifier></xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='022']/m:subfield[@code='a']"><dc:identifier>URN:ISSN:<xsl:value-of select="."/></dc:identifier></xsl:for-each>
      <xsl:for-each select="m:datafield[@tag='856']/m:subfield[@code='u']"><dc:identifier><xsl:value-of select="."/></dc:identifier></xsl:for-each>
      <xsl:variable name="lang" select="substring(m:controlfield[@tag='008'], 36, 3)"/>
      <xsl:if test="normalize-space($lang) != ''"><dc:language><xsl:value-of select="$lang"/></dc:language></xsl:if>
    </srw_dc:dc>
  </xsl:template>
</xsl:stylesheet>
