<?xml version="1.0" encoding="UTF-8"?>
<!-- MARC21 (MARCXML) -> Zebra DOM index record, for Yokodan's SRU tests.
     Trimmed from ../shared/catalogue-servers/start-zebra.sh.
     Index types (zebra-icu.idx): w words, p complete field, 0 identifier key,
     n number (years). Indexes: title, author, isbn, id, date, publisher,
     location, any. -->
<xsl:stylesheet version="1.0"
    xmlns:xsl="http://www.w3.org/1999/XSL/Transform"
    xmlns:m="http://www.loc.gov/MARC21/slim"
    xmlns:z="http://indexdata.com/zebra-2.0"
    exclude-result-prefixes="m">
  <xsl:output method="xml" encoding="UTF-8" indent="yes"/>
  <xsl:template match="text()"/>
  <xsl:template match="/">
    <xsl:apply-templates select="m:record|m:collection/m:record"/>
  </xsl:template>

  <xsl:template match="m:record">
    <xsl:variable name="c001" select="normalize-space(m:controlfield[@tag='001'])"/>
    <xsl:variable name="c008" select="m:controlfield[@tag='008']"/>
    <z:record z:type="update">
      <xsl:if test="$c001 != ''">
        <z:index name="id:0"><xsl:value-of select="$c001"/></z:index>
      </xsl:if>
      <!-- 008/07-10 Date1; 008/11-14 Date2 for ranges (i k m q) -->
      <xsl:if test="string-length($c008) &gt;= 15">
        <xsl:variable name="d1" select="substring($c008, 8, 4)"/>
        <xsl:variable name="d2" select="substring($c008, 12, 4)"/>
        <xsl:if test="translate($d1, '0123456789', '') = '' and string-length($d1) = 4">
          <z:index name="date:n"><xsl:value-of select="$d1"/></z:index>
        </xsl:if>
        <xsl:if test="contains('ikmq', substring($c008, 7, 1)) and translate($d2, '0123456789', '') = '' and string-length($d2) = 4 and $d2 != $d1 and $d2 != '9999'">
          <z:index name="date:n"><xsl:value-of select="$d2"/></z:index>
        </xsl:if>
      </xsl:if>
      <xsl:apply-templates select="m:datafield"/>
    </z:record>
  </xsl:template>

  <!-- the listed subfields of the current field, space-joined -->
  <xsl:template name="join">
    <xsl:param name="codes"/>
    <xsl:variable name="v">
      <xsl:for-each select="m:subfield[contains($codes, @code)]">
        <xsl:text> </xsl:text><xsl:value-of select="."/>
      </xsl:for-each>
    </xsl:variable>
    <xsl:value-of select="normalize-space($v)"/>
  </xsl:template>

  <xsl:template match="m:datafield">
    <!-- 880 (alternate graphic representation: NDL puts the katakana reading
         in "$6 245-01/$1" and the romanisation in "$6 245-01/(B") is indexed
         as the field it is linked to -->
    <xsl:variable name="t">
      <xsl:choose>
        <xsl:when test="@tag = '880'"><xsl:value-of select="substring(m:subfield[@code='6'], 1, 3)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="@tag"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <z:index name="any:w">
      <xsl:call-template name="join"><xsl:with-param name="codes" select="'abcdefghijklmnopqrstuvwxyz0123457'"/></xsl:call-template>
    </z:index>
    <xsl:choose>
      <xsl:when test="$t = '245'">
        <z:index name="title:w"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abfgknps'"/></xsl:call-template></z:index>
        <z:index name="title:p"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abnp'"/></xsl:call-template></z:index>
      </xsl:when>
      <xsl:when test="$t = '130' or $t = '240' or $t = '246' or $t = '490' or $t = '740' or $t = '830'">
        <z:index name="title:w"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abnp'"/></xsl:call-template></z:index>
        <z:index name="title:p"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abnp'"/></xsl:call-template></z:index>
      </xsl:when>
      <xsl:when test="$t = '100' or $t = '110' or $t = '111' or $t = '700' or $t = '710' or $t = '711'">
        <z:index name="author:w"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abcdq'"/></xsl:call-template></z:index>
        <z:index name="author:p"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abcdq'"/></xsl:call-template></z:index>
      </xsl:when>
      <xsl:when test="$t = '020'">
        <xsl:for-each select="m:subfield[@code='a']">
          <xsl:call-template name="isbn"><xsl:with-param name="raw" select="."/></xsl:call-template>
        </xsl:for-each>
      </xsl:when>
      <xsl:when test="$t = '260' or $t = '264'">
        <xsl:if test="m:subfield[@code='b']">
          <z:index name="publisher:w"><xsl:call-template name="join"><xsl:with-param name="codes" select="'b'"/></xsl:call-template></z:index>
          <z:index name="publisher:p"><xsl:value-of select="m:subfield[@code='b']"/></z:index>
        </xsl:if>
        <xsl:for-each select="m:subfield[@code='c']">
          <!-- every non-digit becomes a space; each 4-digit run is a year -->
          <xsl:call-template name="years">
            <xsl:with-param name="s" select="normalize-space(translate(., translate(., '0123456789', ''), '                                                                                                    '))"/>
          </xsl:call-template>
        </xsl:for-each>
      </xsl:when>
      <!-- holdings: 852 (MARC21 location: $a branch, $b collection), 952 (Koha items: $a/$b branch code, $c shelf) -->
      <xsl:when test="$t = '852' or $t = '952'">
        <z:index name="location:w"><xsl:call-template name="join"><xsl:with-param name="codes" select="'abc'"/></xsl:call-template></z:index>
      </xsl:when>
    </xsl:choose>
  </xsl:template>

  <xsl:template name="years">
    <xsl:param name="s"/>
    <xsl:if test="$s != ''">
      <xsl:variable name="tok" select="substring-before(concat($s, ' '), ' ')"/>
      <xsl:if test="string-length($tok) = 4">
        <z:index name="date:n"><xsl:value-of select="$tok"/></z:index>
      </xsl:if>
      <xsl:call-template name="years"><xsl:with-param name="s" select="substring-after($s, ' ')"/></xsl:call-template>
    </xsl:if>
  </xsl:template>

  <!-- ISBN: hyphens and qualifiers ("4101010137 (pbk.)", "978-4-... :") dropped;
       both the ISBN-10 and the ISBN-13 form are indexed, so either finds the record -->
  <xsl:template name="isbn">
    <xsl:param name="raw"/>
    <!-- 'x-' -> 'X': x becomes X and '-' is dropped. (start-zebra.sh has '-x', 'X',
         which turns every hyphen into X, so hyphenated ISBNs such as NDL's
         "978-4-7949-7075-6 :" were not findable at all.) -->
    <xsl:variable name="s1" select="translate(normalize-space($raw), 'x-', 'X')"/>
    <xsl:variable name="bad" select="substring(translate($s1, '0123456789X', ''), 1, 1)"/>
    <xsl:variable name="s">
      <xsl:choose>
        <xsl:when test="$bad != ''"><xsl:value-of select="substring-before($s1, $bad)"/></xsl:when>
        <xsl:otherwise><xsl:value-of select="$s1"/></xsl:otherwise>
      </xsl:choose>
    </xsl:variable>
    <xsl:if test="$s != ''">
      <z:index name="isbn:0 any:w"><xsl:value-of select="$s"/></z:index>
    </xsl:if>
    <xsl:if test="string-length($s) = 10">
      <xsl:variable name="b" select="concat('978', substring($s, 1, 9))"/>
      <xsl:variable name="sum" select="number(substring($b,1,1)) + 3*number(substring($b,2,1)) + number(substring($b,3,1)) + 3*number(substring($b,4,1)) + number(substring($b,5,1)) + 3*number(substring($b,6,1)) + number(substring($b,7,1)) + 3*number(substring($b,8,1)) + number(substring($b,9,1)) + 3*number(substring($b,10,1)) + number(substring($b,11,1)) + 3*number(substring($b,12,1))"/>
      <xsl:if test="string($sum) != 'NaN'">
        <z:index name="isbn:0 any:w"><xsl:value-of select="concat($b, (10 - ($sum mod 10)) mod 10)"/></z:index>
      </xsl:if>
    </xsl:if>
    <xsl:if test="string-length($s) = 13 and starts-with($s, '978')">
      <xsl:variable name="b" select="substring($s, 4, 9)"/>
      <xsl:variable name="sum" select="10*number(substring($b,1,1)) + 9*number(substring($b,2,1)) + 8*number(substring($b,3,1)) + 7*number(substring($b,4,1)) + 6*number(substring($b,5,1)) + 5*number(substring($b,6,1)) + 4*number(substring($b,7,1)) + 3*number(substring($b,8,1)) + 2*number(substring($b,9,1))"/>
      <xsl:if test="string($sum) != 'NaN'">
        <xsl:variable name="c" select="(11 - ($sum mod 11)) mod 11"/>
        <z:index name="isbn:0 any:w">
          <xsl:value-of select="$b"/>
          <xsl:choose><xsl:when test="$c = 10">X</xsl:when><xsl:otherwise><xsl:value-of select="$c"/></xsl:otherwise></xsl:choose>
        </z:index>
      </xsl:if>
    </xsl:if>
  </xsl:template>
</xsl:stylesheet>
