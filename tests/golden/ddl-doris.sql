-- cat_golden.all_types → cat_golden.all_types
CREATE DATABASE IF NOT EXISTS `cat_golden`;
CREATE TABLE `cat_golden`.`all_types` (
  `id` INT NOT NULL,
  `ti` TINYINT NULL,
  `tiu` SMALLINT NULL,
  `si` SMALLINT NULL,
  `siu` INT NULL,
  `mi` INT NULL,
  `miu` INT NULL,
  `i` INT NULL,
  `iu` BIGINT NULL,
  `bi` BIGINT NULL,
  `biu` LARGEINT NULL,
  `b1` TINYINT NULL,
  `yr` SMALLINT NULL,
  `after_year` BIGINT NULL,
  `d` VARCHAR(80) NULL,
  `d2` DECIMAL(10,2) NULL,
  `d0` DECIMAL(5,0) NULL,
  `f` FLOAT NULL,
  `db` DOUBLE NULL,
  `dt` DATE NULL,
  `tm` VARCHAR(20) NULL,
  `tm2` VARCHAR(20) NULL,
  `tm6` VARCHAR(20) NULL,
  `dtm` DATETIME(0) NULL,
  `dtm6` DATETIME(6) NULL,
  `ts` DATETIME(6) NULL,
  `ts0` DATETIME(0) NULL,
  `bit1` BIGINT NULL,
  `bit64` LARGEINT NULL,
  `bit10` BIGINT NULL,
  `e` VARCHAR(24) NULL,
  `st` VARCHAR(32) NULL,
  `pt` STRING NULL,
  `c` CHAR(40) NULL,
  `vc` VARCHAR(400) NULL,
  `l1` VARCHAR(150) NULL,
  `l1t` STRING NULL,
  `bin` VARCHAR(16) NULL,
  `vb` VARCHAR(100) NULL,
  `bl` STRING NULL,
  `tx` STRING NULL,
  `js` JSON NULL,
  `el` VARCHAR(12) NULL,
  `sl` VARCHAR(36) NULL,
  `ip6` STRING NULL,
  `ip4` STRING NULL
)
ENGINE=OLAP
UNIQUE KEY(`id`)
DISTRIBUTED BY HASH(`id`) BUCKETS AUTO
PROPERTIES ("enable_unique_key_merge_on_write" = "true");

-- cat_golden.rich → cat_golden.rich
CREATE DATABASE IF NOT EXISTS `cat_golden`;
CREATE TABLE `cat_golden`.`rich` (
  `id` BIGINT NOT NULL COMMENT 'row id',
  `code` VARCHAR(60) NOT NULL DEFAULT 'n/a' COMMENT 'it''s a code',
  `qty` INT NOT NULL DEFAULT 0,
  `price` DECIMAL(12,2) NULL DEFAULT 9.99,
  `made` DATETIME(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,
  `flags` BIGINT NULL,
  `note` STRING NULL
)
ENGINE=OLAP
UNIQUE KEY(`id`)
COMMENT 'a table with defaults'
DISTRIBUTED BY HASH(`id`) BUCKETS AUTO
PROPERTIES ("enable_unique_key_merge_on_write" = "true");

